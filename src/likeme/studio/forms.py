"""The Train page's forms, drawn from the recipes' config fields (`likeme.cli.train.RECIPES`): the same
fields, defaults, choices and help as `likeme train NAME --help`, never a second list of options.

    form("voice")  -> {"recipe": "voice", "help": "Write like me: ...", "person": True, "minutes": True,
                       "fields": [{"name": "base", "flag": "--base", "type": "str", "default": "smollm2-135m",
                                   "help": "Base model: ...", "main": True}, ...]}
    train_args("voice", {"max_steps": "3"}, person="Ana", out=run, db=None, places=places)
      -> ["train", "voice", "--as", "Ana", "--out", "/home/.../runs/ana-voice", "--max-steps", "3", "-q"]

The fields shown first ("main") are the base model and the shared training fields (`config.TrainingFields`:
how long, how fast, in what precision); the recipe's own fields follow under More settings. The page
sets a few fields itself: whose messages (--as), the store (--db), the run folder (--out), the time
budget (--max-minutes) and, for the author classifier, --label-by author.
"""
from __future__ import annotations

import dataclasses
import typing

from likeme.cli.train import RECIPES  # configs only: the recipes' training code loads in the child process
from likeme.config import TrainingFields, help_text
from likeme.serve.errors import ApiError

OFFERED = ("voice", "embedder", "classifier", "reward", "prefer")  # the recipes on the Train page (issue 23)
SET_BY_PAGE = {"name", "db", "out", "max_minutes", "label_by"}
MAIN = {f.name for f in dataclasses.fields(TrainingFields)} | {"base", "report_to"}
FIXED = {"classifier": {"label_by": "author"}}  # the classifier the page trains: who wrote a message


def flag_of(f: dataclasses.Field) -> str:
    return "--" + f.metadata.get("flag", f.name.replace("_", "-"))


def kind_of(hint) -> str:
    """The field's value type for the form: int, float, bool, str (a list or a path is text)."""
    base = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return {int: "int", float: "float", bool: "bool"}.get(base[0], "str")


def config_of(recipe: str):
    if recipe not in OFFERED:
        raise ApiError(400, f"no recipe {recipe!r} on this page: {', '.join(OFFERED)}", param="recipe")
    return RECIPES[recipe][0]


def form(recipe: str) -> dict:
    """What the page needs to draw `recipe`'s form (see the module's example)."""
    cls = config_of(recipe)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    fields = []
    for f in dataclasses.fields(cls):
        if f.name in SET_BY_PAGE or f.metadata.get("cli") is False or typing.get_origin(hints[f.name]) is list:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        fields.append({"name": f.name, "flag": flag_of(f), "type": kind_of(hints[f.name]), "default": default,
                       "choices": f.metadata.get("choices"), "help": help_text(cls, f), "main": f.name in MAIN})
    fields.sort(key=lambda x: not x["main"])
    return {"recipe": recipe, "help": (cls.__doc__ or "").strip().splitlines()[0],
            "person": "name" in names and recipe != "classifier", "minutes": "max_minutes" in names,
            "fields": fields}


def forms() -> list[dict]:
    return [form(r) for r in OFFERED]


def train_args(recipe: str, values: dict, *, person: str | None, out: str, db: str | None, places,
               minutes: float | None = None) -> list[str]:
    """`likeme train RECIPE ...` from the page's form: each value checked against its field (a number where
    one is wanted, one of the choices, a path inside the allowed places), unset ones left to the defaults."""
    cls = config_of(recipe)
    spec = {f["name"]: f for f in form(recipe)["fields"]}
    args = ["train", recipe, "--out", out]
    if form(recipe)["person"]:
        args += ["--as", person or ""]
    if db and "db" in cls.__dataclass_fields__:  # reward and prefer read pairs files, not the store
        args += ["--db", db]
    for name, value in FIXED.get(recipe, {}).items():
        args += [flag_of(cls.__dataclass_fields__[name]), value]
    if minutes is not None:
        if "max_minutes" not in cls.__dataclass_fields__:
            raise ApiError(400, f"{recipe} has no time budget: set its steps or epochs", param="minutes")
        if not minutes > 0:
            raise ApiError(400, "the time budget is a number of minutes above 0", param="minutes")
        args += ["--max-minutes", str(minutes)]
    for name, value in (values or {}).items():
        if name not in spec:
            raise ApiError(400, f"{recipe} has no setting {name!r}", param=name)
        f = spec[name]
        if value is None or value == "":
            continue
        if f["type"] == "bool":
            if not isinstance(value, bool):
                raise ApiError(400, f"{f['flag']}: true or false", param=name)
            args.append(f["flag"] if value else "--no-" + f["flag"][2:])
            continue
        text = str(value).strip()
        try:
            {"int": int, "float": float}.get(f["type"], str)(text)
        except ValueError:
            raise ApiError(400, f"{f['flag']}: {text!r} is not {'a whole number' if f['type'] == 'int' else 'a number'}",
                           param=name) from None
        if f["choices"] and text not in f["choices"]:
            raise ApiError(400, f"{f['flag']}: one of {', '.join(f['choices'])}", param=name)
        args += [f["flag"], places.value(text) if f["type"] == "str" else text]
    return args + ["-q"]

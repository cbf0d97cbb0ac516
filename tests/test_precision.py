"""--precision: names, errors, the auto rule, and a LoRA run merged in fp32 before a bf16 cast."""

import pytest
import torch
from tiny import likeme_cli

from likeme import precision
from likeme.errors import LikemeError


def test_names_and_errors():
    assert precision.choose("bf16").dtype == torch.bfloat16
    assert precision.choose("bfloat16").name == "bf16" and precision.choose(torch.float16).name == "fp16"
    assert (precision.choose("int8").name, precision.choose("int8").dtype) == ("int8", torch.float32)
    with pytest.raises(LikemeError, match="unknown precision 'fp8': use one of auto, fp32, bf16, fp16, int8"):
        precision.choose("fp8")
    with pytest.raises(LikemeError, match="use one of auto, fp32, bf16, fp16$"):
        precision.choose("int8", inference=False)  # int8 dynamic quantization cannot train
    with pytest.raises(LikemeError, match="use bf16 on a GPU"):
        precision.choose("int8", "cuda")


def test_auto_on_this_cpu_follows_the_flags():
    chosen = precision.choose("auto", "cpu")
    if not precision.cpu_native_bf16():
        assert (chosen.name, chosen.why) == ("fp32", "this CPU has no native bf16 (avx512_bf16 / amx_bf16)")
    else:  # bf16 where it is native and measured at least 1.1x fp32
        speedup = float(chosen.why.split("measured ")[1].split("x")[0])  # the measurement it chose by
        assert chosen.name == ("bf16" if speedup >= 1.1 else "fp32")
    assert precision.choose(None, "mps").name == "fp32"


def test_lora_is_merged_in_fp32_then_cast(tiny_voice_run):
    """bf16's 8-bit mantissa would round much of a LoRA update away if the sum were taken in bf16."""
    from likeme import models
    from likeme.use import generate

    bf16 = generate.load(tiny_voice_run, precision="bf16")
    assert bf16.precision.name == "bf16" and bf16.model.dtype == torch.bfloat16
    fp32, _ = models.load_causal_lm(tiny_voice_run)
    merged_in_bf16, _ = models.load_causal_lm(tiny_voice_run, dtype=torch.bfloat16, merge=False)
    merged_in_bf16 = merged_in_bf16.merge_and_unload()
    name = "model.layers.0.self_attn.q_proj.weight"
    ours, exact = bf16.model.state_dict()[name], fp32.state_dict()[name].to(torch.bfloat16)
    assert torch.equal(ours, exact)
    assert not torch.equal(merged_in_bf16.state_dict()[name], exact)  # the rounding this avoids


def test_cli_precision(tiny_voice_run):
    p = likeme_cli("generate", tiny_voice_run, "hi", "--precision", "bf16", "--backend", "torch",
                   "--max-new-tokens", "4", "--seed", "1")
    assert p.returncode == 0, p.stderr
    p = likeme_cli("chat", tiny_voice_run, "-m", "hi", "--precision", "fp8")
    assert p.returncode == 2 and "'fp8' is not one of 'auto', 'fp32', 'bf16', 'fp16', 'int8'" in p.stderr

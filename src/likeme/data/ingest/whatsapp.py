"""WhatsApp "Export chat" text files (Android and iOS, any language, 12h or 24h clock).

    27/03/2022, 21:41 - Dmitry S: Hello World                    Android, day first, 24h
    [3/27/22, 9:41:35\u202fPM] Dmitry S: \u200eimage omitted          iOS, month first, 12h
    [٢٧\u200f/٣\u200f/٢٠٢٢، ٩:٤١:٣٥\xa0م] Dmitry S: Hello             iOS in Arabic
    [21:41:35, 3/27/22] Dmitry S: Hello World                        iOS, time before the date

A message starts with a header (date, time, separator) at the start of a line; lines that do not
start with one continue the message above. Which of day/month comes first is decided once for the
whole file (see `_infer_orders`), never per line, so "01/02/23" means the same date everywhere.
Whether the time comes before the date is decided once per file too (see `_time_first`): a file is
cut with one header pattern or the other, so a pasted header of the other kind stays message text.

Speed: the whole text is cut with one `re.split` on "\\n" + header (the regex engine jumps from
newline to newline in C); dates are parsed once per distinct date string, times once per distinct
time; the per-message loop only does dict lookups, slicing and `datetime(...)`. See bench/ingest.py.
"""
from __future__ import annotations

import gc
import re
from datetime import datetime
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

from likeme.data.ingest import Message
from likeme.data.ingest._io import (
    INVISIBLE,
    clean_name,
    read_head,
    read_text,
    strip_invisible,
)
from likeme.errors import IngestError

NAME = "whatsapp"
DESCRIPTION = "WhatsApp 'Export chat' .txt/.zip (Android and iOS, every date order, 12h/24h, any language)"
PLATFORM = "whatsapp"

# ---------------------------------------------------------------------------------------------
# The header. Groups: 1 date, 2 time (with the AM/PM marker that Chinese/Japanese/Korean write
# before it), 3 AM/PM marker after the time. `\d` also matches Arabic-Indic digits, and `int()` reads them.
_MARK = "[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]*"  # bidi marks phones put inside headers
_H = "[ \t\u00a0\u202f\u2007]"  # horizontal space only: a header never spans lines
_AMPM_AFTER = (
    # The lookahead fails fast on " - " (24h files): trying each alternative there cost ~10% of the split.
    "(?=[AaPpصمvnπμSCÖقب])(?:"
    r"[AaPp]\.?" + _H + r"?[Mm]\.?"  # AM, pm, a.m., p. m., p.\xa0m.
    r"|[صم]"  # Arabic
    r"|vorm\.|nachm\.|π\.μ\.|μ\.μ\.|SA|CH|ÖÖ|ÖS|ق\.ظ|ب\.ظ"  # German, Greek, Vietnamese, Turkish, Persian
    ")"
)
_AMPM_BEFORE = "[上下午오][午前後전후]"  # 上午 下午 午前 午後 오전 오후
_DATE = (
    r"\d{1,4}" + _MARK + r"[./\-]" + _H + r"?" + _MARK + r"\d{1,2}" + _MARK + r"[./\-]" + _H + r"?" + _MARK
    + r"(?:[RH]\d{1,2}|\d{1,4}(?: BE)?)"  # Japanese era years (R4 = Reiwa 4), Buddhist years
)
_TIME = "(?:" + _AMPM_BEFORE + _H + r"?)?\d{1,2}[:.]\d{2}(?:[:.]\d{2})?"
_HEADER_BODY = (
    _MARK + r"\[?" + _MARK + "(" + _DATE + ")" + _MARK + r"\.?[,\u060c]?" + _H + "*"
    + "(" + _TIME + r")\.?" + "(?:[_ \t\u00a0\u202f]*(" + _AMPM_AFTER + "))?" + _MARK
    + r"(?:\](?:" + _H + r"[-\u2013\u2014])?|" + _H + r"[-\u2013\u2014])" + _H
)
# Some iOS locales write the time first: `[14:56:01, 3/18/22] Name: msg`, `[9:05:12\u202fPM, 18/03/2022]`.
# Groups: 1 time, 2 AM/PM marker after the time, 3 date. A file uses one form or the other
# (`_time_first`), so each file is still cut by one pattern with no per-line cost.
_HEADER_BODY_TF = (
    _MARK + r"\[?" + _MARK + "(" + _TIME + r")\.?" + "(?:[_ \t\u00a0\u202f]*(" + _AMPM_AFTER + "))?" + _MARK
    + r"(?:[,\u060c]" + _H + "*|" + _H + "+)" + _MARK + "(" + _DATE + ")" + _MARK + r"\.?"
    + r"(?:\](?:" + _H + r"[-\u2013\u2014])?|" + _H + r"[-\u2013\u2014])" + _H
)
# Split on "\n" + header: starting with a literal lets the engine jump from newline to newline in C.
_SPLIT = re.compile(r"\n" + _HEADER_BODY)
_SPLIT_PLAIN = re.compile(r"\n" + _HEADER_BODY.replace(_MARK, ""))  # same, for files without marks: ~10% faster
_HEADER_LINE = re.compile(_HEADER_BODY)
_SPLIT_TF = re.compile(r"\n" + _HEADER_BODY_TF)
_SPLIT_TF_PLAIN = re.compile(r"\n" + _HEADER_BODY_TF.replace(_MARK, ""))
_HEADER_LINE_TF = re.compile(_HEADER_BODY_TF)
_GROUPS = 3
_PROBE = 1 << 16  # how far `_time_first` looks for the first header when the first line is none
# signal-export writes `[2019-12-24, 12:23] Name: msg` (and `[2021-08-03 13:40:58]` in its chat.md):
# a file whose headers all look like that is Signal's (signal.py, sniffed first), not ours.
_SIGNAL_HEADER = re.compile(r"\[\d{4}-\d{2}-\d{2}(?:, \d{2}:\d{2}| \d{2}:\d{2}:\d{2})\] ")
_DATE_FIELDS = re.compile(r"([RH]?)(\d+)\D+?(\d+)\D+?([RH]?)(\d+)( BE)?")

_MARKS = frozenset(INVISIBLE + "\u202f")
_MARK_RE = re.compile("[" + INVISIBLE + "]")
_MARK_RUN = re.compile("[" + INVISIBLE + "]+")

# ---------------------------------------------------------------------------------------------
# What a body can be besides a person's words. Lookups are on the body with marks stripped.
# Sources: the strings in WhatsApp's own exports (see tests/fixtures/whatsapp and the real exports
# in ../shared/data); lower-cased keys, since some languages capitalise "Video omitido".

# iOS writes "\u200eimage omitted" (a file name may come before: "Some file.txt \u200edocument omitted").
_IOS_MEDIA = """
image omitted|video omitted|audio omitted|sticker omitted|GIF omitted|document omitted|Contact card omitted
|video note omitted|voice message omitted
|Bild weggelassen|Video weggelassen|Audio weggelassen|Sticker weggelassen|GIF weggelassen|Dokument weggelassen
|Kontaktkarte ausgelassen
|image absente|vidéo absente|audio omis|sticker omis|GIF retiré|document manquant|Fiche contact manquante
|imagen omitida|Video omitido|audio omitido|sticker omitido|GIF omitido|documento omitido|Tarjeta de contacto omitida
|imagem ocultada|vídeo omitido|áudio ocultado|figurinha omitida|Cartão do contato omitido
|imagem não revelada|vídeo não revelado|ficheiro de áudio não revelado|sticker não revelado|GIF não revelada
|documento não revelado|Contacto não revelado
|immagine omessa|video omesso|audio omesso|sticker non incluso|GIF esclusa|documento omesso|Scheda contatto omessa
|afbeelding weggelaten|video weggelaten|audio weggelaten|sticker weggelaten|GIF weggelaten|document weggelaten
|Visitekaartje weggelaten
|изображение отсутствует|видео отсутствует|аудиофайл отсутствует|стикер не добавлен|GIF отсутствует
|документ отсутствует|Карточка контакта отсутствует
|зображення відсутнє|відео відсутнє|аудіо відсутнє|Наклейку не додано|GIF-анімацію пропущено|документ пропущено
|Картка контакту відсутня
|görüntü dahil edilmedi|video dahil edilmedi|ses dahil edilmedi|Çıkartma dahil edilmedi|GIF dahil edilmedi
|belge dahil edilmedi|Kişi kartı dahil edilmedi
|gambar tidak disertakan|video tidak disertakan|audio tidak disertakan|stiker tidak disertakan|GIF tidak disertakan
|dokumen tidak disertakan|Kartu kontak tidak disertakan
|obraz pominięty|wideo pominięte|audio pominięte|pominięto naklejkę|Plik GIF pominięty|dokument pominięty
|Pominięta wizytówka kontaktu
|התמונה הושמטה|סרטון הווידאו הושמט|קטע קול הושמט|סטיקר הושמט|GIF הושמט|מסמך הושמט|כרטיס איש קשר הושמט
|تم حذف الملصقات
"""
# Arabic iOS: "لم يتم إدراج <what>" ("<what> was not included") for every kind of media.
_AR_MEDIA_PREFIX = "لم يتم إدراج"
# Android writes "<Media omitted>" (the caption, if any, on the next line).
_ANDROID_MEDIA = """
Media omitted|Medien weggelassen|Medien ausgeschlossen|Médias omis|Fichier omis|Multimedia omitido|Archivo omitido
|Mídia oculta|Mídia omitida|Ficheiro não revelado|Media omessi|Media omesso|Media weggelaten|Без медиафайлов
|Файл пропущен|Медіа пропущено|Medya dahil edilmedi|Medya atlanmış|Media tidak disertakan|pliki pominięto
|تم استبعاد الوسائط|מדיה הושמטה|Mediefil udeladt|Media har utelämnats|Media jätetty pois|Média vynechána
"""
# Android with media: "IMG-20220327-WA0001.jpg (file attached)"; iOS with media: "<attached: 00000012-PHOTO-...jpg>".
_ANDROID_ATTACHED = re.compile(
    r"^(.*?)\s*\((?:file attached|Datei angehängt|fichier joint|archivo adjunto|archivo adjuntado|arquivo anexado"
    r"|ficheiro anexado|file allegato|bestand bijgevoegd|файл добавлен|файл додано|dosya ekli|file terlampir"
    r"|załączony plik|الملف مرفق|קובץ מצורף|bifogad fil|vedlagt fil)\)$"
)
_IOS_ATTACHED = re.compile(
    r"^(.*?)\s*<(?:attached|angehängt|Anhang|pièce jointe|adjunto|anexo|anexado|allegato|прикреплено|додано"
    r"|bijgevoegd|eklendi|terlampir|załączono|المُرفق|מצורף|bifogat|vedlagt|附件|添付ファイル|첨부됨): [^<>\n]*>$"
)
# Deleted (or not yet delivered) messages: the person did send something, its text is gone. Like
# media, they are a turn without text: kind "media", text "".
_DELETED_NOTICES = """
This message was deleted|You deleted this message|Waiting for this message. This may take a while
|Waiting for this message. Check your phone|Diese Nachricht wurde gelöscht
|Du hast diese Nachricht gelöscht|Ce message a été supprimé|Vous avez supprimé ce message
|Se eliminó este mensaje|Eliminaste este mensaje|Este mensaje fue eliminado
|Esta mensagem foi apagada|Você apagou esta mensagem|Mensagem apagada|Apagou esta mensagem
|Questo messaggio è stato eliminato|Hai eliminato questo messaggio|Dit bericht is verwijderd
|U hebt dit bericht verwijderd|Je hebt dit bericht verwijderd|Данное сообщение удалено
|Вы удалили данное сообщение|Это сообщение удалено|Вы удалили это сообщение
|Це повідомлення було видалено|Ви видалили це повідомлення|تم حذف هذه الرسالة|أنت حذفت هذه الرسالة
|لقد حذَفت هذه الرسالة|Bu mesaj silindi|Bu mesajı sildiniz|Pesan ini dihapus
|Anda menghapus pesan ini|Ta wiadomość została usunięta|Usunąłeś(-ęłaś) tę wiadomość|הודעה זו נמחקה
|מחקת את ההודעה הזו
"""
# Missed calls: not the person's words, the author is kept.
_CALL_NOTICES = """
Missed voice call|Missed video call|Missed group voice call|Missed group video call
|Verpasster Sprachanruf|Verpasster Videoanruf|Appel vocal manqué|Appel vidéo manqué|Llamada perdida
|Videollamada perdida|Llamada de voz perdida|Chamada de voz perdida|Chamada de vídeo perdida
|Videochamada perdida|Chiamata vocale persa|Videochiamata persa|Gemist spraakgesprek
|Gemist videogesprek|Пропущенный аудиозвонок|Пропущенный видеозвонок|Пропущений аудіодзвінок
|Пропущений відеодзвінок|مكالمة صوتية فائتة|مكالمة فيديو فائتة|Cevapsız sesli arama
|Cevapsız görüntülü arama|Panggilan suara tak terjawab|Panggilan video tak terjawab
"""
_AUTHORED_NOTICES = _DELETED_NOTICES + "|" + _CALL_NOTICES


def _variants(block: str) -> set[str]:
    """Each entry of a `|`-separated block, lower-cased, with and without a final period."""
    out = set()
    for s in block.replace("\n", "").split("|"):
        s = s.strip().lower()
        if s:
            out.update((s, s + "."))
    return out


_MEDIA_WORDS = _variants(_IOS_MEDIA)
_NOTICE_WORDS = _variants(_AUTHORED_NOTICES)
_ANDROID_MEDIA_WORDS = _variants(_ANDROID_MEDIA)
# Fast path: the exact bodies as exports write them (no marks), checked with one dict lookup.
_EXACT: dict[str, str] = {}
for _s in _MEDIA_WORDS:
    _EXACT[_s] = "media"
for _s in _NOTICE_WORDS:
    _EXACT[_s] = "system"
_DELETED_WORDS = _variants(_DELETED_NOTICES)
for _s in _DELETED_WORDS:
    _EXACT[_s] = "media"
for _s in _ANDROID_MEDIA_WORDS:
    _EXACT["<" + _s + ">"] = "media"
_EXACT["null"] = "media"  # Android writes "null" for a view-once photo
for _k, _v in list(_EXACT.items()):  # the spellings as exported: "GIF omitted", "<Media omitted>"
    _EXACT.setdefault(_k[:1].upper() + _k[1:], _v)
for _block, _kind in ((_IOS_MEDIA, "media"), (_DELETED_NOTICES, "media"), (_CALL_NOTICES, "system")):
    for _s in _block.replace("\n", "").split("|"):
        _s = _s.strip()
        _EXACT.setdefault(_s, _kind)
        _EXACT.setdefault(_s + ".", _kind)
for _s in _ANDROID_MEDIA.replace("\n", "").split("|"):
    _EXACT.setdefault("<" + _s.strip() + ">", "media")
# "Some file.txt document omitted" without marks (some tools strip them): found by the last word(s).
_MEDIA_TAILS = {s[-7:] for s in _EXACT if len(s) >= 7 and _EXACT[s] == "media"}

# "<This message was edited>" is appended to edited messages: drop it, keep the message.
_EDITED = re.compile(
    r"<(?:This message was edited|Diese Nachricht wurde bearbeitet|Ce message a été modifié"
    r"|Se editó este mensaje|Mensaje editado|Mensagem editada|Esta mensagem foi editada"
    r"|Questo messaggio è stato modificato|Dit bericht is bewerkt|Сообщение изменено|Это сообщение изменено"
    r"|Повідомлення змінено|Bu mesaj düzenlendi|Pesan ini telah diedit|Wiadomość edytowana"
    r"|تم تعديل هذه الرسالة|ההודעה נערכה)\.?>$",
    re.IGNORECASE,
)

# Notices iOS writes with a person (or the chat) as author: `Elon Musk: \u200eMessages and calls are
# end-to-end encrypted…`. Only tried on bodies that start with a bidi mark, or whose first 12
# characters are those of a known notice (exports whose marks were stripped).
_ENCRYPTION = (
    r"Messages and calls are end-to-end encrypted|Messages to this (?:group|chat) are now secured"
    r"|Messages you send to this (?:group|chat)|Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt"
    r"|Nachrichten an diese|Les messages et les appels sont chiffrés|Los mensajes y las llamadas están cifrados"
    r"|As mensagens e (?:as )?chamadas|I messaggi e le chiamate sono crittografati"
    r"|Berichten en gesprekken worden end-to-end versleuteld|Сообщения и звонки защищены сквозным шифрованием"
    r"|Повідомлення й дзвінки захищено|الرسائل والمكالمات مشفرة|Mesajlar ve aramalar uçtan uca şifrelidir"
    r"|Pesan dan panggilan terenkripsi|Wiadomości i połączenia są w pełni zaszyfrowane|ההודעות והשיחות מוצפנות"
)
_SECURITY = (
    r"Your security code with .+ changed|.+'s security code changed|Deine Sicherheitsnummer für .+ hat sich geändert"
    r"|Die Sicherheitsnummer von .+ hat sich geändert|Votre code de sécurité avec .+ a changé"
    r"|Le code de sécurité de .+ a changé|Cambió tu código de seguridad con|Cambió el código de seguridad de"
    r"|(?:O )?[Ss]eu código de segurança (?:com|partilhado com) .+ mudou|Il tuo codice di sicurezza con"
    r"|Uw beveiligingscode voor|Ваш код безопасности с|Код безпеки з|تغيّر رمز أمانك|.+ ile aranızdaki güvenlik kodu"
    r"|Kode keamanan Anda dengan|Twój kod zabezpieczeń"
)
_GROUP_EVENT = (
    r"(?:created (?:group|this group)|added |left$|removed |changed the (?:subject|group (?:name|description|icon))"
    r"|changed this group's|deleted this group's icon|joined using this group's invite link|joined from the community"
    r"|changed their phone number|changed to \+|pinned a message|turned (?:on|off) disappearing messages"
    r"|(?:is|are) now an admin|You were added|You joined|You're now an admin|started a (?:voice |video )?call"
    r"|hat die Gruppe|hat .+ hinzugefügt|hat .+ entfernt|ist .+ beigetreten|hat den Betreff|hat das Gruppenbild"
    r"|a créé le groupe|a ajouté|est parti|a retiré|a changé|a modifié|creó el grupo|añadió a|salió del grupo|eliminó a"
    r"|cambió (?:el asunto|la descripción|el ícono|la imagen)|se unió|criou o grupo|adicionou|saiu|removeu|mudou"
    r"|alterou|ha creato il gruppo|ha aggiunto|è uscit|ha rimosso|ha cambiato|создал\(?а?\)? групп|добавил|вышел"
    r"|удалил\(?а?\)? |изменил|أنشأ المجموعة|أضاف|غادر|أزال|غيّر)"
)
_AUTHORED_SYSTEM = re.compile(
    "(?:" + _ENCRYPTION + "|" + _SECURITY + ")|(?:^.{0,80}?" + _GROUP_EVENT + ")", re.DOTALL
)
_SYSTEM_PREFIX12 = {
    m[:12] for m in (
        "Messages and calls are end-to-end encrypted", "Messages to this group are now secured",
        "Messages to this chat are now secured", "Your security code with ",
        "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt", "Deine Sicherheitsnummer für ",
        "Les messages et les appels sont chiffrés", "Votre code de sécurité avec ",
        "Los mensajes y las llamadas están cifrados", "Cambió tu código de seguridad con",
        "As mensagens e chamadas", "As mensagens e as chamadas", "Seu código de segurança com",
        "I messaggi e le chiamate sono crittografati", "Il tuo codice di sicurezza con",
        "Berichten en gesprekken worden", "Uw beveiligingscode voor",
        "Сообщения и звонки защищены", "Ваш код безопасности с", "Повідомлення й дзвінки захищено",
        "الرسائل والمكالمات مشفرة", "تغيّر رمز أمانك", "Mesajlar ve aramalar uçtan uca",
        "Pesan dan panggilan terenkripsi", "Kode keamanan Anda dengan", "Wiadomości i połączenia są",
        "ההודעות והשיחות מוצפנות",
    )
}
# The actor of an authorless notice: "Ana created group "Trip"", "Ana added Bo", "Ana left".
_ACTOR = re.compile(
    r"^(.{1,80}?) (?:created group|created this group|added |left$|removed |changed |joined |deleted |pinned "
    r"|turned |started |hat |a créé|a ajouté|a retiré|a changé|a modifié|est parti|creó |añadió |salió |eliminó "
    r"|cambió |se unió|criou |adicionou |saiu|removeu |mudou |alterou |ha creato |ha aggiunto |è uscit|ha rimosso "
    r"|ha cambiato |создал|добавил|вышел|удалил|изменил|أنشأ|أضاف|غادر|أزال|غيّر)",
    re.DOTALL,
)
_NO_ACTOR = re.compile("(?:" + _ENCRYPTION + "|" + _SECURITY + r"|You were added|You joined|You're now)")
# A body whose "author" holds a quote was a notice whose quoted text had ": " in it:
# `Ana changed the subject from "Trip" to "Trip: day 2"`.
_QUOTED_NOTICE = re.compile(r"^.{1,80}? (?:changed|created|hat|a changé|a créé|cambió|creó|mudou|alterou|criou|изменил|создал)")

# AM/PM markers -> True for PM, False for AM.
_PM = {"p", "pm", "م", "nachm", "μμ", "ch", "ös", "بظ", "下午", "午後", "오후"}
_AM = {"a", "am", "ص", "vorm", "πμ", "sa", "öö", "قظ", "上午", "午前", "오전"}


def _is_pm(marker: str) -> bool | None:
    """ "p.\xa0m." -> True, "AM" -> False, "" -> None (24h clock)."""
    key = re.sub(r"[\s.\u202f\u00a0]", "", marker).lower()
    if key in _PM:
        return True
    if key in _AM:
        return False
    return None


# ---------------------------------------------------------------------------------------------
def sniff(path: Path) -> bool:
    """A text file whose first non-empty line is a WhatsApp header (not Signal's `[yyyy-mm-dd, HH:MM]`)."""
    path = Path(path)
    if not path.is_file():
        return False  # an export folder: the core walks it and asks about `_chat.txt` itself
    head = read_head(path, 4096)
    if not head:
        return False
    lines = [ln for ln in strip_invisible(head).splitlines() if ln.strip()][:40]
    if not lines:
        return False
    header = _HEADER_LINE if _HEADER_LINE.match(lines[0]) else _HEADER_LINE_TF
    if not header.match(lines[0]):
        return False
    headers = [ln for ln in lines if header.match(ln)]
    return not all(_SIGNAL_HEADER.match(ln) for ln in headers)


def conversation_name(path: Path) -> str:
    """The chat's name from the export's file name.

    Example: "WhatsApp Chat with Sam (1).txt" -> "Sam"; "Sam/_chat.txt" with the folder
    "WhatsApp Chat - Sam" -> "Sam"; "notes.txt" -> "notes".
    """
    path = Path(path)
    stem = path.stem
    if stem.lower().startswith("_chat") and path.parent.name:
        stem = path.parent.name
    if "%20" in stem or "%2" in stem:
        stem = unquote(stem)
    stem = re.sub(r"\s*\(\d+\)$", "", stem)
    m = re.match(
        r"^(?:WhatsApp[ .]Chat[ .](?:with|-|–|mit|avec|con|com|met|med)[ .]"
        r"|WhatsApp-Chat mit |Chat de WhatsApp con |Discussion WhatsApp avec |Conversa do WhatsApp com "
        r"|Chat WhatsApp (?:con|s uživatelem|z) |Чат WhatsApp с (?:контактом |группой )?|WhatsApp-chat met )"
        r"(.+)$",
        stem,
        re.IGNORECASE,
    )
    name = m.group(1) if m else stem
    return clean_name(name) or stem


# ---------------------------------------------------------------------------------------------
def _date_fields(s: str) -> tuple[int, int, int, bool, str]:
    """ "27\u200f/3\u200f/2022" -> (27, 3, 2022, False, "/"): the three numbers as written, whether
    the first is a year, and the separator. Japanese era and Buddhist years are converted."""
    m = _DATE_FIELDS.match(strip_invisible(s))
    _, a, b, era3, c, be = m.groups()
    sep = next((ch for ch in s if ch in "./-"), "/")
    if len(a) >= 3:  # 2022/03/27
        year, first_is_year = int(a), True
        if be:
            year -= 543
        return year, int(b), int(c), first_is_year, sep
    year = int(c)
    if era3 == "R":
        year += 2018
    elif era3 == "H":
        year += 1988
    elif be:
        year -= 543
    elif year < 100:
        year += 2000
    return int(a), int(b), year, False, sep


def _infer_orders(dates: list[str], us_clock: bool) -> dict[str, bool]:
    """Day-first (True) or month-first (False) for each date separator used in the file.

    A first field above 12 means day-first, a second above 12 month-first; when all fields fit
    both, the order in which the dates go up through the file decides; when that ties too, a
    file with an upper-case AM/PM clock (US) is month-first and everything else day-first.
    Example: ["01/02/23", "13/02/23"] -> {"/": True}
    """
    by_sep: dict[str, list[tuple[int, int, int]]] = {}
    for s in dates:
        a, b, year, first_is_year, sep = _date_fields(s)
        if not first_is_year:
            by_sep.setdefault(sep, []).append((a, b, year))
    orders = {}
    for sep, fields in by_sep.items():
        first_big = any(a > 12 for a, _, _ in fields)
        second_big = any(b > 12 for _, b, _ in fields)
        if first_big != second_big:
            orders[sep] = first_big
            continue

        def backwards(day_first: bool) -> float:
            seq = [(y, b, a) if day_first else (y, a, b) for a, b, y in fields]
            if any(not 1 <= mo <= 12 for _, mo, _ in seq):
                return float("inf")
            return sum(1 for x, y in zip(seq, seq[1:]) if y < x)

        dmy, mdy = backwards(True), backwards(False)
        if dmy != mdy:
            orders[sep] = dmy < mdy
        else:
            orders[sep] = not (us_clock and sep != ".")
    return orders


def _time_first(text: str) -> bool:
    """Whether the file's headers put the time before the date (`[14:56:01, 3/18/22] Name: msg`).

    Decided by the first line, or else by which kind of header comes first in the file's first
    64 KiB; a file with neither is date-first (and `parse` reports that it found no header).
    Example: "[14:56:01, 3/18/22] Ana: hi\n" -> True; "[3/18/22, 14:56:01] Ana: hi\n" -> False
    """
    if _HEADER_LINE.match(text):
        return False
    if _HEADER_LINE_TF.match(text):
        return True
    date_first = _SPLIT.search(text, 0, _PROBE)
    # A time-first header that starts before the first date-first one ends within 300 characters of it.
    time_first = _SPLIT_TF.search(text, 0, date_first.start() + 300 if date_first else _PROBE)
    return time_first is not None and (date_first is None or time_first.start() < date_first.start())


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """Messages of one WhatsApp export `.txt`, oldest first."""
    path = Path(path)
    text = read_text(path)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    has_marks = any(c in text for c in INVISIBLE)
    # Every header after a newline splits the text; parts = [before, date, time, marker, rest, date, ...]
    # ([before, time, marker, date, rest, ...] when the file writes the time first).
    if _time_first(text):
        split = _SPLIT_TF if has_marks else _SPLIT_TF_PLAIN
        header_line, date_at, time_at, marker_at = _HEADER_LINE_TF, 3, 1, 2
    else:
        split = _SPLIT if has_marks else _SPLIT_PLAIN
        header_line, date_at, time_at, marker_at = _HEADER_LINE, 1, 2, 3
    parts = split.split(text)
    stride = _GROUPS + 1
    first = header_line.match(parts[0])  # the first line has no newline before it
    if first:
        parts[0:1] = ["", *first.groups(), parts[0][first.end():]]
    if len(parts) == 1:
        raise IngestError(
            path, None,
            "no WhatsApp message lines found (expected lines like '31/12/2023, 23:59 - Name: text' "
            "or '[31/12/2023, 23:59:59] Name: text')",
        )
    conversation = conversation_name(path)

    # Dates: parsed once per distinct string, after deciding the day/month order for the file.
    date_strs = list(dict.fromkeys(parts[date_at::stride]))
    markers = {m for m in parts[marker_at::stride] if m}
    us_clock = any(m in ("AM", "PM") for m in markers)
    orders = _infer_orders(date_strs, us_clock)
    dates: dict[str, tuple[int, int, int]] = {}
    for s in date_strs:
        a, b, year, first_is_year, sep = _date_fields(s)
        if first_is_year:
            dates[s] = (a, b, year)
        elif orders.get(sep, True):
            dates[s] = (year, b, a)
        else:
            dates[s] = (year, a, b)

    times: dict[str, tuple[int, int, int]] = {}
    authors: dict[str, str | bool] = {}  # the header's name part -> clean author, or False: a notice
    exact = _EXACT
    media_tails = _MEDIA_TAILS
    prefix12 = _SYSTEM_PREFIX12
    out: list[Message] = []
    append = out.append
    last = datetime.min
    unsorted = False
    columns = (parts[date_at::stride], parts[time_at::stride], parts[marker_at::stride], parts[4::stride])
    # The loop makes only acyclic objects (Message, datetime, str), so the cyclic GC has nothing to
    # find; its passes over the growing list took ~40% of the loop (measured, 200k messages).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for date_s, time_s, marker, rest in zip(*columns):
            y, mo, d = dates[date_s]
            tkey = time_s + marker if marker else time_s
            t = times.get(tkey)
            if t is None:
                t = times[tkey] = _clock(time_s, marker)
            sent_at = datetime(y, mo, d, *t)
            if sent_at < last:
                unsorted = True
            last = sent_at

            if rest[-1:] == "\n":  # blank lines before the next header, or at the end of the file
                rest = rest.rstrip("\n")
            head, sep, body = rest.partition(": ")
            author = authors.get(head) if sep else False
            if author is None:
                author = authors[head] = _author(head)
            if author is False:
                append(_notice(conversation, sent_at, rest, has_marks))
                continue

            kind = "text"
            if has_marks and _MARK_RE.search(body):
                marked = body
                body = strip_invisible(body)
            else:
                marked = None
            found = exact.get(body)
            if found is not None:
                kind = found
                if kind == "media":
                    body = ""
            elif marked is not None or body[-1:] in ">)" or body[-7:] in media_tails \
                    or body[:12] in prefix12 or "\n" in body:
                kind, body, author = _classify(body, marked, author)
            append(Message(PLATFORM, conversation, author, sent_at, body, kind, None, None))
    except ValueError as e:  # datetime() on an impossible date or time
        line = _line_of(parts, len(out), stride, 0 if first else 1)
        raise IngestError(path, f"line {line}",
                          f"impossible date or time in the header ({e}); fix or delete that line") from None
    finally:
        if gc_was_on:
            gc.enable()

    if unsorted:
        out.sort(key=lambda m: m.sent_at)  # stable: same-minute messages keep the file's order
    yield from out


def _clock(time_s: str, marker: str | None) -> tuple[int, int, int]:
    """(hour, minute, second) on a 24h clock.

    Example: ("9:41", "PM") -> (21, 41, 0); ("12:05:09", "a. m.") -> (0, 5, 9);
    ("下午3:45", None) -> (15, 45, 0); ("13:37", "p.m.") -> (13, 37, 0) (an hour past 12 wins).
    """
    if not time_s[0].isdigit():  # CJK/Korean marker before the time
        marker, time_s = time_s[:2], time_s[2:].strip(" \t\u00a0\u202f\u2007")
    f = re.split(r"[:.]", time_s)
    h, mi, sec = int(f[0]), int(f[1]), int(f[2]) if len(f) > 2 else 0
    pm = _is_pm(marker) if marker else None
    if pm and h < 12:
        h += 12
    elif pm is False and h == 12:
        h = 0
    return h, mi, sec


def _author(head: str) -> str | bool:
    """The author from the part of a line before ": ", or False when that part is no name but a
    notice whose own text holds ": " (`Ana changed the subject from "Trip" to "Trip: day 2"`)."""
    if "\n" in head or (any(q in head for q in '"“„«') and _QUOTED_NOTICE.match(head)):
        return False
    return clean_name(head).lstrip("~").strip()


def _line_of(parts: list[str], k: int, stride: int, first_newline: int) -> int:
    """Line number (1-based) of the k-th header: the newlines before it are those of the text before
    the first header, of the k bodies before it and the ones the split took before each header."""
    newlines = parts[0].count("\n") + k + first_newline
    for j in range(k):
        newlines += parts[(j + 1) * stride].count("\n")
    return newlines + 1


def _notice(conversation: str, sent_at: datetime, rest: str, has_marks: bool) -> Message:
    """A line with no "Name: ": a notice from WhatsApp itself; the actor is kept when one is named."""
    text = strip_invisible(rest).strip() if has_marks else rest.strip()
    return Message(PLATFORM, conversation, _actor(text), sent_at, text, "system", None, None)


def _classify(body: str, marked: str | None, author: str) -> tuple[str, str, str]:
    """(kind, text, author) for a body that may be media or a notice. `body` has no bidi marks;
    `marked` is the body as written when it had some (iOS puts one before "image omitted")."""
    if body[-1:] == ">":  # "... <This message was edited>": keep the message, drop the note
        cut = body.rfind("<")
        if _EDITED.fullmatch(body, cut):
            body = body[:cut].rstrip()
            if marked is not None:
                marked = marked[: marked.rfind("<")]
    first, _, caption = body.partition("\n")
    caption = caption.strip()
    low = first.strip().lower()
    if low[:1] == "<" and low[-1:] == ">" and low[1:-1].strip() in _ANDROID_MEDIA_WORDS:
        return "media", caption, author  # Android "<Media omitted>", caption on the next lines
    if low in _MEDIA_WORDS:
        return "media", caption, author
    m = _IOS_ATTACHED.match(first)
    if m:
        return "media", "\n".join(x for x in (m.group(1).strip(), caption) if x), author
    m = _ANDROID_ATTACHED.match(first)
    if m:
        return "media", caption or m.group(1).strip(), author
    if marked is not None:
        # iOS: the marker follows the last bidi mark: "Resume.pdf • \u200e2 pages \u200edocument omitted".
        pieces = _MARK_RUN.split(marked.partition("\n")[0])
        last = pieces[-1].strip()
        if len(pieces) > 1 and (last.lower() in _MEDIA_WORDS or last.startswith(_AR_MEDIA_PREFIX)):
            return "media", caption or strip_invisible("".join(pieces[:-1])).strip(), author
    else:
        # Marks removed by some tool on the way: "Some file.txt document omitted".
        words = low.split(" ")
        for n_words in (2, 3, 4):
            if len(words) > n_words and " ".join(words[-n_words:]) in _MEDIA_WORDS:
                return "media", caption or " ".join(first.strip().split(" ")[:-n_words]).strip(), author
    if low in _DELETED_WORDS:
        return "media", "", author
    if low in _NOTICE_WORDS:
        return "system", body, author
    lead = marked is not None and marked[:1] in _MARKS
    if (lead or first[:12] in _SYSTEM_PREFIX12) and _AUTHORED_SYSTEM.match(first):
        # iOS names the chat (or the other person) before its own notices: the actor is in the text.
        return "system", body, _actor(first)
    return "text", body, author


def _actor(text: str) -> str:
    """Who did what a notice says: "Ana added Bo" -> "Ana"; "Messages and calls are…" -> ""."""
    if _NO_ACTOR.match(text):
        return ""
    m = _ACTOR.match(text)
    return clean_name(m.group(1)).lstrip("~").strip() if m else ""

"""An ``email.send`` message → a MIME message ready for a relay, as pure code."""

import mimetypes
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any


def one_line(value: str) -> str:
    """A header value with any line break (CR, LF, NEL, U+2028, ...) turned into a space,
    so no text from a message can end a header early or add one."""
    return " ".join(value.splitlines())


def recipients(message: dict[str, Any]) -> list[str]:
    """The envelope recipients of an ``email.send``: To, Cc and Bcc."""
    return [*message["to"], *(message.get("cc") or []), *(message.get("bcc") or [])]


def envelope_sender(message: dict[str, Any], header_from: str) -> str:
    """``mail_from`` when the message gives one (``""`` is the null sender of bounces),
    else the address of its From header."""
    mail_from = message.get("mail_from")
    return mail_from if mail_from is not None else header_from


def compose(message: dict[str, Any], default_sender: str) -> tuple[EmailMessage, str, list[str]]:
    """The MIME message, the envelope sender and the envelope recipients (To, Cc and Bcc)."""
    sender = message.get("from") or default_sender
    mime = EmailMessage()
    mime["From"] = sender
    mime["To"] = ", ".join(message["to"])
    if message.get("cc"):
        mime["Cc"] = ", ".join(message["cc"])
    if message.get("reply_to"):
        mime["Reply-To"] = message["reply_to"]
    mime["Subject"] = one_line(message.get("subject") or "")
    mime["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2].strip(">") or "localhost"
    mime["Message-ID"] = make_msgid(domain=domain)
    if message.get("in_reply_to"):
        mime["In-Reply-To"] = message["in_reply_to"]
    references = list(message.get("references") or [])
    if message.get("in_reply_to") and message["in_reply_to"] not in references:
        references.append(message["in_reply_to"])
    if references:
        mime["References"] = " ".join(references)
    for name, value in message.get("headers") or []:
        mime[name] = one_line(value)
    text, html = message.get("text"), message.get("html")
    if text is not None:
        mime.set_content(text)
        if html is not None:
            mime.add_alternative(html, subtype="html")
    elif html is not None:
        mime.set_content(html, subtype="html")
    for item in message.get("attachments") or []:
        ctype = item.get("content_type") or mimetypes.guess_type(item.get("filename") or "")[0]
        maintype, _, subtype = (ctype or "application/octet-stream").partition("/")
        mime.add_attachment(
            item["content"],
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=one_line(item["filename"]) if item.get("filename") else None,
        )
    return mime, envelope_sender(message, sender), recipients(message)

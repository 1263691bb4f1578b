"""Build, sign and post WhatsApp Cloud API webhooks, as Meta sends them.

Tests use it to play Meta towards linbatd's /webhooks/<instance> endpoint:
inbound messages of every documented type, status updates (sent, delivered,
read, failed with errors[]), several messages or entries in one webhook, and
deliberately bad signatures. Payload shapes follow Meta's webhook reference
(developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/
reference/messages/...): object "whatsapp_business_account", entry[].id is the
WABA id, changes[].field is "messages", changes[].value carries
messaging_product, metadata, contacts and messages, or statuses.

Typical use:

    body = wa_webhook.webhook(wa_webhook.value(
        messages=[wa_webhook.text("6281234567890", "Halo")],
        names={"6281234567890": "Budi"}))
    status, answer = wa_webhook.post(url, body, app_secret)

Only the standard library is used, so any Python 3 runs it.
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import time
import urllib.error
import urllib.request

WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE_NUMBER = "6281100000000"

_seq = itertools.count(1)
_salt = os.urandom(6).hex().upper()


def now_ts():
    """The current Unix time as Meta writes it: a string of seconds."""
    return str(int(time.time()))


def new_wamid(wa_id="0"):
    """A fresh message id shaped like Meta's ("wamid." and base64 text)."""
    raw = ("%s%s%08X" % (wa_id, _salt, next(_seq))).encode()
    return "wamid." + base64.b64encode(raw).decode()


def _message(frm, mtype, content, id=None, timestamp=None, context=None):
    """One entry of value.messages[] with the fields every type shares."""
    msg = {"from": frm, "id": id or new_wamid(frm),
           "timestamp": timestamp or now_ts()}
    if context is not None:
        msg["context"] = context
    msg["type"] = mtype
    if content is not None:
        msg[mtype] = content
    return msg


def context(message_id, frm=DISPLAY_PHONE_NUMBER):
    """The context of a reply: the business message it answers."""
    return {"from": frm, "id": message_id}


def text(frm, body, **kw):
    """A text message."""
    return _message(frm, "text", {"body": body}, **kw)


def _media(mid, mime_type, sha256, url, **extra):
    """The media object shared by image, document, audio, video, sticker."""
    obj = {k: v for k, v in extra.items() if v is not None}
    obj.update({"mime_type": mime_type,
                "sha256": sha256 or hashlib.sha256(mid.encode()).hexdigest(),
                "id": mid})
    if url is not None:
        obj["url"] = url
    return obj


def image(frm, media_id, mime_type="image/jpeg", sha256=None, caption=None,
          url=None, **kw):
    """An image message (caption optional)."""
    return _message(frm, "image", _media(media_id, mime_type, sha256, url,
                                         caption=caption), **kw)


def document(frm, media_id, filename="dokumen.pdf",
             mime_type="application/pdf", sha256=None, caption=None, url=None,
             **kw):
    """A document message with its file name."""
    return _message(frm, "document", _media(media_id, mime_type, sha256, url,
                                            caption=caption,
                                            filename=filename), **kw)


def audio(frm, media_id, mime_type="audio/mpeg", sha256=None, voice=False,
          url=None, **kw):
    """An audio message; voice=True marks a recorded voice note."""
    obj = _media(media_id, mime_type, sha256, url)
    obj["voice"] = voice
    return _message(frm, "audio", obj, **kw)


def voice(frm, media_id, sha256=None, url=None, **kw):
    """A voice note: an audio message of OGG/Opus with voice true."""
    return audio(frm, media_id, mime_type="audio/ogg; codecs=opus",
                 sha256=sha256, voice=True, url=url, **kw)


def video(frm, media_id, mime_type="video/mp4", sha256=None, caption=None,
          url=None, **kw):
    """A video message (caption optional)."""
    return _message(frm, "video", _media(media_id, mime_type, sha256, url,
                                         caption=caption), **kw)


def sticker(frm, media_id, sha256=None, animated=False, url=None, **kw):
    """A sticker message (WebP)."""
    obj = _media(media_id, "image/webp", sha256, url)
    obj["animated"] = animated
    return _message(frm, "sticker", obj, **kw)


def location(frm, latitude, longitude, name=None, address=None, url=None,
             **kw):
    """A location message; name, address and url only for a named place."""
    obj = {"latitude": latitude, "longitude": longitude}
    for k, v in (("name", name), ("address", address), ("url", url)):
        if v is not None:
            obj[k] = v
    return _message(frm, "location", obj, **kw)


def contact_card(formatted_name, phone, wa_id=None, first_name=None,
                 last_name=None, email=None, company=None):
    """One shared contact card for contacts()."""
    card = {"name": {"formatted_name": formatted_name},
            "phones": [{"phone": phone, "type": "CELL"}]}
    if first_name:
        card["name"]["first_name"] = first_name
    if last_name:
        card["name"]["last_name"] = last_name
    if wa_id:
        card["phones"][0]["wa_id"] = wa_id
    if email:
        card["emails"] = [{"email": email, "type": "WORK"}]
    if company:
        card["org"] = {"company": company}
    return card


def contacts(frm, cards, **kw):
    """A contacts message: a list of contact_card() values."""
    msg = _message(frm, "contacts", None, **kw)
    msg["contacts"] = list(cards)
    return msg


def reaction(frm, message_id, emoji, **kw):
    """A reaction to one of our messages; emoji "" removes a reaction."""
    return _message(frm, "reaction", {"message_id": message_id,
                                      "emoji": emoji}, **kw)


def button(frm, label, payload, context_id, **kw):
    """A tap on a quick-reply button of one of our templates."""
    return _message(frm, "button", {"payload": payload, "text": label},
                    context=context(context_id), **kw)


def button_reply(frm, reply_id, title, context_id, **kw):
    """A tap on a reply button of one of our interactive messages."""
    return _message(frm, "interactive", {
        "type": "button_reply",
        "button_reply": {"id": reply_id, "title": title}},
        context=context(context_id), **kw)


def list_reply(frm, reply_id, title, context_id, description=None, **kw):
    """A choice in a list of one of our interactive messages."""
    reply = {"id": reply_id, "title": title}
    if description is not None:
        reply["description"] = description
    return _message(frm, "interactive", {"type": "list_reply",
                                         "list_reply": reply},
                    context=context(context_id), **kw)


def unsupported(frm, kind="poll_update", **kw):
    """A message Cloud API cannot carry (type "unsupported", error 131051)."""
    msg = _message(frm, "unsupported", {"type": kind}, **kw)
    msg["errors"] = [{"code": 131051, "title": "Message type unknown",
                      "message": "Message type unknown",
                      "error_data": {
                          "details": "Message type is currently not supported."}}]
    return msg


def unknown(frm, **kw):
    """The older form of an unsupported message: type "unknown", no object."""
    msg = _message(frm, "unknown", None, **kw)
    msg["errors"] = [{"code": 131051, "title": "Message type unknown",
                      "message": "Message type unknown",
                      "error_data": {
                          "details": "Message type is currently not supported."}}]
    return msg


def pricing(category="utility", billable=True, type_="regular"):
    """The pricing object of a status (per-message pricing, PMP)."""
    return {"billable": billable, "pricing_model": "PMP", "type": type_,
            "category": category}


def conversation(conv_id, origin="utility", expiration_timestamp=None):
    """The conversation object of a status (webhooks before v24.0)."""
    conv = {"id": conv_id}
    if expiration_timestamp is not None:
        conv["expiration_timestamp"] = expiration_timestamp
    conv["origin"] = {"type": origin}
    return conv


def status(wamid, status_, recipient_id, timestamp=None,
           biz_opaque_callback_data=None, conversation_=None, pricing_=None,
           errors=None):
    """One entry of value.statuses[]: sent, delivered, read or failed."""
    st = {"id": wamid, "status": status_,
          "timestamp": timestamp or now_ts(), "recipient_id": recipient_id}
    if biz_opaque_callback_data is not None:
        st["biz_opaque_callback_data"] = biz_opaque_callback_data
    if conversation_ is not None:
        st["conversation"] = conversation_
    if pricing_ is not None:
        st["pricing"] = pricing_
    if errors is not None:
        st["errors"] = errors
    return st


def error(code=131026, title="Message undeliverable", message=None,
          details="Message Undeliverable."):
    """One entry of a failed status's errors[] (also in value.errors[])."""
    return {"code": code, "title": title, "message": message or title,
            "error_data": {"details": details},
            "href": "https://developers.facebook.com/docs/whatsapp/"
                    "cloud-api/support/error-codes/"}


def failed(wamid, recipient_id, code=131026, title="Message undeliverable",
           details="Message Undeliverable.", **kw):
    """A failed status with its errors[] (131026 undeliverable by default)."""
    return status(wamid, "failed", recipient_id,
                  errors=[error(code, title, details=details)], **kw)


def value(messages=(), statuses=(), names=None, contacts_=None,
          phone_number_id=PHONE_NUMBER_ID,
          display_phone_number=DISPLAY_PHONE_NUMBER):
    """One changes[].value: metadata, then contacts+messages and/or statuses.

    contacts_ defaults to one entry per distinct sender of messages, named
    from names ({wa_id: profile name}) or "".
    """
    v = {"messaging_product": "whatsapp",
         "metadata": {"display_phone_number": display_phone_number,
                      "phone_number_id": phone_number_id}}
    messages = list(messages)
    if messages:
        if contacts_ is None:
            seen = []
            for m in messages:
                if m["from"] not in seen:
                    seen.append(m["from"])
            contacts_ = [{"profile": {"name": (names or {}).get(w, "")},
                          "wa_id": w} for w in seen]
        v["contacts"] = contacts_
        v["messages"] = messages
    if statuses:
        v["statuses"] = list(statuses)
    return v


def entry(*values, waba_id=WABA_ID):
    """One entry[] with one change per value."""
    return {"id": waba_id,
            "changes": [{"value": v, "field": "messages"} for v in values]}


def webhook(*values, waba_id=WABA_ID, entries=None):
    """A whole webhook: one entry of the given values, or the given entries."""
    return {"object": "whatsapp_business_account",
            "entry": list(entries) if entries is not None
            else [entry(*values, waba_id=waba_id)]}


def encode(payload):
    """The bytes of a payload (a dict, a str or bytes) as posted."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, separators=(",", ":"),
                      ensure_ascii=False).encode()


def sign(body, app_secret):
    """The X-Hub-Signature-256 header value of raw body bytes."""
    if isinstance(app_secret, str):
        app_secret = app_secret.encode()
    return "sha256=" + hmac.new(app_secret, body, hashlib.sha256).hexdigest()


def verify(body, app_secret, header):
    """Whether a X-Hub-Signature-256 header matches body (constant time)."""
    return header is not None and hmac.compare_digest(sign(body, app_secret),
                                                      header)


def post(url, payload, app_secret, signature=None, timeout=10.0):
    """POST a webhook signed with app_secret; return (HTTP status, bytes).

    signature overrides the header (a wrong one tests rejection; "" omits it).
    A refused connection raises URLError; an HTTP error status is returned.
    """
    body = encode(payload)
    headers = {"Content-Type": "application/json",
               "User-Agent": "facebookexternalua"}
    sig = sign(body, app_secret) if signature is None else signature
    if sig:
        headers["X-Hub-Signature-256"] = sig
    req = urllib.request.Request(url, data=body, headers=headers,
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

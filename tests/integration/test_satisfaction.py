"""The satisfaction survey end to end: an operator resolves a WhatsApp
conversation through the API, linbatd sends the investor the 1-5 question on
WhatsApp, and the investor's bare digit is recorded as the score without
reopening or routing anything; a later ordinary message opens a conversation
as before."""

import inbox
from test_whatsapp import BUDI, emu, start_wa, text_hook, wa  # noqa: F401 (fixtures)

QUESTION = ("Terima kasih. Seberapa puas Anda dengan layanan kami? Balas 1-5 (5 = sangat puas).\n"
            "Thank you. How satisfied are you? Reply 1-5.")


def test_resolve_asks_and_a_digit_is_recorded_not_routed(wa, db):
    ani = inbox.add_operator(db, "ani@x.id", capacity=2, online=True)
    tok = inbox.token(db, "ani@x.id")
    assert wa.post(text_hook(body="Apakah LKPM saya sudah diterima?")[0])[0] == 200
    conv, owner = wa.one("select id, assigned_operator from linbat.conversation")
    assert owner == ani

    r = inbox.call(wa.d, "POST", "/api/v1/conversations/%d/resolve" % conv, None, inbox.bearer(tok))
    assert r.status == 200, r
    mid = wa.one("select id from linbat.message where conversation_id = %s and meta ? 'satisfaction'",
                 (conv,))[0]
    sent = wa.sent(mid)
    assert (sent["type"], sent["to"], sent["body"]) == ("text", BUDI, QUESTION)

    assert wa.post(text_hook(body=" 5 ")[0])[0] == 200
    assert wa.one("select score, answered_at is not null from linbat.satisfaction "
                  "where conversation_id = %s", (conv,)) == (5, True)
    assert wa.q("select id, status, assigned_operator from linbat.conversation") == [(conv, "resolved", ani)]
    assert wa.one("select count(*) from linbat.message where conversation_id = %s and direction = 'in'",
                  (conv,))[0] == 2
    assert wa.one("select count(*) from linbat.message where direction = 'out'")[0] == 1, \
        "the score is recorded silently"
    assert wa.one("select open_count from linbat.operator where id = %s", (ani,))[0] == 0

    assert wa.post(text_hook(body="Satu pertanyaan lagi")[0])[0] == 200
    rows = wa.q("select status, assigned_operator from linbat.conversation where id <> %s", (conv,))
    assert rows == [("open", ani)], "an ordinary message opens a conversation, routed as before"

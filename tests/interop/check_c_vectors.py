"""Checks messages encoded by libjp with jupyter_client's Session.

Usage: /usr/bin/python3 tests/interop/check_c_vectors.py C2PY.json

Each message must verify and deserialize (Session.feed_identities, then
Session.deserialize with content=True) to exactly what write_c_vectors.c
put in; the content is fixed here, independently of the C side.  The same
message a second time must be rejected as a replay, and a tampered one as
an invalid signature: the checks are real.
"""
import datetime
import sys

from jupyter_client.session import Session

# Keep in sync with content() in write_c_vectors.c.
CONTENT = {
    "code": "print('h\u00e9llo \u2603 \U0001F680')\n",
    "silent": False,
    "n": 42,
    "big": 2**53,
    "pi": 3.25,
    "nested": {"list": [1, "two", None, True, {"deep": []}]},
    "nul": "a\x00b",
    "escapes": "tab\tquote\"backslash\\newline\n\u001f",
}


def expect_raises(fn, text):
    try:
        fn()
    except ValueError as e:
        if text not in str(e):
            raise AssertionError(f"rejected for {e!r}, expected {text!r}") from e
        return
    raise AssertionError(f"accepted, expected a rejection ({text})")


def buffer(size, seed):
    return bytes((i * 7 + seed) % 251 for i in range(size))


def check(v):
    name = f"{v['scheme']}{'' if v['key'] else ' unsigned'}" + (
        " buffers" if v["buffers"] else "")
    key = v["key"].encode()
    session = Session(key=key, signature_scheme=v["scheme"])
    frames = [bytes.fromhex(f) for f in v["frames"]]
    idents, rest = session.feed_identities(frames, copy=True)
    assert idents == [b"ident-1", b"\x00\x80\x00\x41\xa7"], (name, idents)
    msg = session.deserialize(rest, content=True, copy=True)
    h = msg["header"]
    assert h["msg_id"] == v["msg_id"] == msg["msg_id"], name
    assert h["msg_type"] == "execute_request" == msg["msg_type"], name
    assert h["session"] == v["session"], name
    assert h["username"] == "c-tester", name
    assert h["version"] == "5.3", name
    # extract_dates turned the date into an aware datetime: it parsed.
    assert isinstance(h["date"], datetime.datetime), (name, h["date"])
    assert h["date"].utcoffset() == datetime.timedelta(0), name
    age = datetime.datetime.now(datetime.timezone.utc) - h["date"]
    assert datetime.timedelta(seconds=-5) < age < datetime.timedelta(minutes=10), name
    assert msg["parent_header"]["msg_id"] == v["parent_msg_id"], name
    assert msg["parent_header"]["msg_type"] == "kernel_info_request", name
    assert msg["metadata"] == {"cellId": "c-1"}, (name, msg["metadata"])
    assert msg["content"] == CONTENT, (name, msg["content"])
    want = [buffer(3, 1), buffer(0, 2), buffer(70000, 3)] if v["buffers"] else []
    assert [bytes(b) for b in msg["buffers"]] == want, name
    if key:
        # A second delivery is a replay; a changed frame breaks the HMAC.
        expect_raises(lambda: session.deserialize(rest, content=True), "Duplicate Signature")
        fresh = Session(key=key, signature_scheme=v["scheme"])
        tampered = list(rest)
        tampered[4] = tampered[4].replace(b'"n":42', b'"n":43')
        assert tampered[4] != rest[4], name
        expect_raises(lambda: fresh.deserialize(tampered, content=True), "Invalid Signature")
    else:
        assert rest[0] == b"", name
    return name


def main():
    import json

    with open(sys.argv[1]) as f:
        vectors = json.load(f)
    names = [check(v) for v in vectors]
    assert len(names) == 12, names
    schemes = {v["scheme"] for v in vectors}
    assert schemes == {"hmac-sha256", "hmac-sha1", "hmac-sha224", "hmac-sha384",
                       "hmac-sha512"}, schemes
    print(f"interop C -> python: jupyter_client verified and deserialized "
          f"{len(names)} libjp messages ({', '.join(sorted(schemes))}, unsigned; "
          f"with and without buffers)")


if __name__ == "__main__":
    main()

"""Writes test vectors made by jupyter_client's Session, for libjp to check.

Usage: /usr/bin/python3 tests/interop/make_vectors.py OUTDIR

OUTDIR/py2c.json      a list of messages serialized by jupyter_client under
                      every scheme, unsigned, with and without buffers; each
                      names the key, the frames (hex), what a correct decoder
                      must find, or that it must reject them
OUTDIR/conn-*.json    connection files written by jupyter_client
OUTDIR/seeds-wire/    the same messages as libFuzzer seeds (see
                      tests/fuzz/fuzz_wire.c for the input format)
OUTDIR/seeds-connection/  connection files as seeds for fuzz_connection
"""
import hashlib
import json
import os
import sys

from jupyter_client.connect import write_connection_file
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session

SCHEMES = ["hmac-sha256", "hmac-sha1", "hmac-sha224", "hmac-sha384", "hmac-sha512"]
FUZZ_KEY = b"ferry-fuzz-key"  # keep in sync with tests/fuzz/fuzz_wire.c
FUZZ_SEP = b"\xf5\xf5\xf5\xf5"  # never valid UTF-8, so never inside JSON text

CONTENT = {
    "code": "print('h\u00e9llo \u2603 \U0001F680')\n",
    "silent": False,
    "store_history": True,
    "user_expressions": {"x": "1+1"},
    "allow_stdin": True,
    "stop_on_error": True,
    "n": 42,
    "big": 2**53,
    "negative": -7,
    "pi": 3.25,
    "nested": {"list": [1, "two", None, True, {"deep": []}]},
    "nul": "a\x00b",
    "escapes": "tab\tquote\"backslash\\newline\n\u001f",
}


def jsonable(obj):
    """What a decoder must find: the message part as JSON sees it."""
    return json.loads(json.dumps(obj, default=json_default))


def buffer_sets():
    big = bytes((i * 7 + 3) % 251 for i in range(70000))
    return {"nobuf": [], "bufs": [b"\x00\x01\xff", b"", big]}


def message(session, parent, buffers):
    msg = session.msg(
        "execute_request",
        content=CONTENT,
        parent=parent,
        metadata={"deletedCells": [], "recordTiming": False, "cellId": "c-1"},
    )
    idents = [b"ident-1", b"\x00\x80\x00\x41\xa7"]
    frames = session.serialize(msg, ident=idents) + list(buffers)
    return msg, idents, frames


def vector(name, scheme, key, msg, idents, frames, buffers, **extra):
    v = {
        "name": name,
        "scheme": scheme,
        "key": key.decode(),
        "frames": [bytes(f).hex() for f in frames],
        "expect": {
            "idents": [i.hex() for i in idents],
            "header": jsonable(msg["header"]),
            "parent_header": jsonable(msg["parent_header"]),
            "metadata": jsonable(msg["metadata"]),
            "content": jsonable(msg["content"]),
            "buffers": [bytes(b).hex() for b in buffers],
        },
        "reject": None,
    }
    v.update(extra)
    return v


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "seeds-wire"), exist_ok=True)
    os.makedirs(os.path.join(out, "seeds-connection"), exist_ok=True)
    vectors = []
    for scheme in SCHEMES + ["unsigned"]:
        key = b"" if scheme == "unsigned" else ("key-for-" + scheme + "-\u00e9").encode()
        sch = "hmac-sha256" if scheme == "unsigned" else scheme
        session = Session(key=key, signature_scheme=sch, username="py-tester")
        parent = session.msg("kernel_info_request")
        for bname, buffers in buffer_sets().items():
            msg, idents, frames = message(session, parent, buffers)
            vectors.append(vector(f"{scheme}-{bname}", sch, key, msg, idents, frames,
                                  buffers))
        if scheme == "unsigned":
            continue
        # What a decoder must refuse, under this scheme.
        msg, idents, frames = message(session, parent, [])
        tampered = list(frames)
        tampered[-1] = frames[-1].replace(b'"n": 42', b'"n": 43')
        assert tampered[-1] != frames[-1]
        vectors.append(vector(f"{scheme}-tampered", sch, key, msg, idents, tampered, [],
                              reject="invalid signature"))
        vectors.append(vector(f"{scheme}-wrong-key", sch, key + b"x", msg, idents, frames,
                              [], reject="invalid signature"))
        short = list(frames)
        short[3] = frames[3][:-2]
        vectors.append(vector(f"{scheme}-short-signature", sch, key, msg, idents, short,
                              [], reject="bad signature length"))
        unsigned = list(frames)
        unsigned[3] = b""
        vectors.append(vector(f"{scheme}-unsigned", sch, key, msg, idents, unsigned, [],
                              reject="unsigned message"))
        # Decoded twice in one session: the second time is a replay.
        msg, idents, frames = message(session, parent, [b"x"])
        vectors.append(vector(f"{scheme}-replayed", sch, key, msg, idents, frames, [b"x"],
                              replay=True))

    with open(os.path.join(out, "py2c.json"), "w") as f:
        json.dump(vectors, f, indent=1)

    # Seeds for the wire fuzzer: first byte picks the mode (0: check the
    # signature with FUZZ_KEY, 1: the harness re-signs, 2: unsigned session),
    # then the frames joined by FUZZ_SEP.
    fuzz = Session(key=FUZZ_KEY, signature_scheme="hmac-sha256", username="fuzz")
    parent = fuzz.msg("kernel_info_request")
    n = 0
    for bname, buffers in buffer_sets().items():
        buffers = [b for b in buffers if len(b) < 4096]
        for ctype, content in [("execute", CONTENT), ("empty", {}),
                               ("stream", {"name": "stdout", "text": "hi\n"})]:
            msg = fuzz.msg("execute_request", content=content, parent=parent)
            frames = fuzz.serialize(msg, ident=[b"id"]) + buffers
            for mode in (0, 1, 2):
                data = bytes([mode]) + FUZZ_SEP.join(frames)
                name = hashlib.sha1(data).hexdigest()[:16]
                with open(os.path.join(out, "seeds-wire", name), "wb") as f:
                    f.write(data)
                n += 1

    for i, scheme in enumerate(SCHEMES):
        fname = os.path.join(out, f"conn-{scheme}.json")
        if os.path.exists(fname):
            os.unlink(fname)
        write_connection_file(fname, ip="127.0.0.1", key=f"conn-key-{i}".encode(),
                              transport="tcp", shell_port=50000 + i, iopub_port=50010 + i,
                              stdin_port=50020 + i, hb_port=50030 + i,
                              control_port=50040 + i, signature_scheme=scheme,
                              kernel_name="ferry")
        with open(fname, "rb") as f:
            text = f.read()
        with open(os.path.join(out, "seeds-connection", f"conn-{scheme}"), "wb") as f:
            f.write(text)
    print(f"interop: wrote {len(vectors)} jupyter_client vectors, {n} wire seeds, "
          f"{len(SCHEMES)} connection files")


if __name__ == "__main__":
    main()

"""The wire: bad messages are dropped, heartbeat and control answer while a
cell runs."""

import hashlib
import hmac
import json
import uuid

import pytest
import zmq

import harness


def hold(kernel):
    """Start a cell that runs until the test releases it (or 5 minutes pass,
    far beyond any wait of the test: the cell provably still runs when the
    test hears back).  Returns (pending, release)."""
    flag = kernel.cwd / f"release-{uuid.uuid4().hex}"
    code = ("import os, time\n"
            "print('started', flush=True)\n"
            "t0 = time.monotonic()\n"
            f"while not os.path.exists({str(flag)!r}) and time.monotonic() - t0 < 300:\n"
            "    time.sleep(0.02)\n"
            "'released'")
    p = kernel.submit(code)
    p.wait_until_running()
    return p, flag.touch


@pytest.fixture
def raw_socket(kernel):
    """A plain DEALER socket on the kernel's shell port, and the connection info."""
    info = kernel.km.get_connection_info()
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(f"tcp://{info['ip']}:{info['shell_port']}")
    yield s, info
    s.close()


def frames(info, msg_type, good_signature=True):
    header = {"msg_id": uuid.uuid4().hex, "session": uuid.uuid4().hex, "username": "t",
              "date": "2026-01-01T00:00:00.000000Z", "msg_type": msg_type, "version": "5.3"}
    parts = [json.dumps(p).encode() for p in (header, {}, {}, {})]
    key = info["key"] if isinstance(info["key"], bytes) else info["key"].encode()
    h = hmac.new(key, digestmod=hashlib.sha256)
    for p in parts:
        h.update(p)
    sig = h.hexdigest().encode()
    if not good_signature:
        sig = bytes(reversed(sig))
    return header["msg_id"], [b"<IDS|MSG>", sig] + parts


def assert_no_reply(sock, wait=0.5):
    assert sock.poll(int(wait * 1000)) == 0, f"unexpected reply {sock.recv_multipart()}"


def test_raw_well_signed_request_gets_reply(raw_socket):
    # Proves the raw frames are right, so the next tests' silence means "dropped".
    sock, info = raw_socket
    _, msg = frames(info, "kernel_info_request")
    sock.send_multipart(msg)
    assert sock.poll(harness.TIMEOUT * 1000), "no reply to a well-signed raw kernel_info_request"
    reply = sock.recv_multipart()
    assert json.loads(reply[reply.index(b"<IDS|MSG>") + 2])["msg_type"] == "kernel_info_reply"


def test_badly_signed_request_is_dropped_and_kernel_keeps_serving(kernel, raw_socket):
    sock, info = raw_socket
    msg_id, msg = frames(info, "execute_request", good_signature=False)
    sock.send_multipart(msg)
    assert_no_reply(sock)
    kernel.flush(0.3)
    assert kernel.messages_for(msg_id) is None, "kernel answered a forged request"
    assert kernel.execute("'alive'").ok().text == "'alive'"


def test_malformed_frames_are_dropped_and_kernel_keeps_serving(kernel, raw_socket):
    sock, info = raw_socket
    for bad in ([b"garbage"], [b"<IDS|MSG>"], [b"<IDS|MSG>", b"", b"{", b"{}", b"{}", b"{}"],
                [b"<IDS|MSG>", b"x" * 64, b"\xff\xfe", b"{}", b"{}", b"{}"]):
        sock.send_multipart(bad)
    assert_no_reply(sock)
    assert kernel.execute("'alive'").ok().text == "'alive'"


def test_heartbeat_answers_while_cell_runs(kernel):
    info = kernel.km.get_connection_info()
    hb = zmq.Context.instance().socket(zmq.REQ)
    hb.linger = 0
    hb.connect(f"tcp://{info['ip']}:{info['hb_port']}")
    p, release = hold(kernel)
    try:
        # The cell runs until released: an echo before that is an echo while
        # it runs, however long a loaded machine takes to send it.
        hb.send(b"ping-ferry")
        assert hb.poll(harness.TIMEOUT * 1000), "no heartbeat while a cell runs"
        assert hb.recv() == b"ping-ferry"
        kernel.flush()
        assert not p.done
    finally:
        release()
        hb.close()
    assert p.finish().ok().text == "'released'"


def test_control_answers_while_cell_runs(kernel):
    p, release = hold(kernel)
    try:
        # The cell runs until released: a reply before that did not wait for it.
        r = kernel.send("kernel_info_request", {}, channel="control").wait_for_reply()
        assert r.reply["msg_type"] == "kernel_info_reply"
        kernel.flush()
        assert not p.done, "control reply should not have waited for the cell"
    finally:
        release()
    assert p.finish().ok().text == "'released'"

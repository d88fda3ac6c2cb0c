"""The pool's message parsers, fuzzed from both ends (seeded, bounded).

Worker end: this test plays the kernel to a real `ferry-kernel --worker`
process and sends it well-framed tasks with garbage payloads, tasks with
too few or oversized frames, cancels of every shape and unknown verbs.  The
worker must answer each well-framed task exactly once, with an error, and
stay alive.

Kernel end: rogue peers connect to a live kernel's pool socket (same user,
inside its private runtime directory) with made-up or stolen worker
identities and send frames of every shape; the pool must drop them and go
on returning correct results.
"""

import os
import random
import struct
import subprocess
import tempfile

import pytest
import zmq

import harness

pytestmark = pytest.mark.ferry_only("ferry's pool")

SEED = int(os.environ.get("FERRY_FUZZ_SEED", "14"))
VERBS = [b"task", b"cancel", b"done", b"out", b"ready", b"", b"tas", b"task\x00", b"x" * 300]


def junk(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return b""
    if kind == 1:
        return struct.pack("<Q", rng.getrandbits(64))
    if kind == 2:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
    if kind == 3:
        return b"\x80\x05" + bytes(rng.getrandbits(8) for _ in range(rng.randrange(40)))
    if kind == 4:
        return b"\x00" * rng.choice([1, 7, 9, 100_000])
    return rng.choice(VERBS)


def kernel_exe():
    argv = harness.kernel_argv()
    if "ferry" not in os.path.basename(argv[0]):
        pytest.skip("needs the ferry-kernel binary")
    return argv[0]


def test_a_worker_answers_garbage_tasks_with_errors_and_lives(tmp_path):
    rng = random.Random(SEED)
    short = tempfile.mkdtemp(prefix="fz-", dir="/tmp")  # ipc paths are short
    endpoint = f"ipc://{short}/pool-0"
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.bind(endpoint)
    status = os.memfd_create("status")
    os.ftruncate(status, 4096)
    log = open(tmp_path / "worker.log", "wb")
    # A garbage pickle may ask for an absurd allocation: Python turns the
    # NULL into MemoryError; ASan's default aborts the process instead.
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
               ":allocator_may_return_null=1")
    worker = subprocess.Popen([kernel_exe(), "--worker", endpoint, "--status-fd",
                               str(status)], pass_fds=(status,), stdout=log, stderr=log,
                              process_group=0, env=env)  # as the pool starts it
    os.close(status)
    try:
        assert router.poll(60_000), "the worker never said ready"
        ident, verb = router.recv_multipart()[:2]
        assert verb == b"ready"
        sent = {}
        for i in range(300):
            r = rng.random()
            if r < 0.5:  # a well-framed task: ["task", id, payload, buffers...]
                task_id = 1000 + i
                frames = [b"task", struct.pack("<Q", task_id)] + \
                    [junk(rng) for _ in range(rng.randrange(1, 4))]
                sent[task_id] = 0
            elif r < 0.7:
                frames = [b"cancel", junk(rng), junk(rng)]
            else:
                frames = [junk(rng) for _ in range(rng.randrange(1, 6))]
            router.send_multipart([ident] + frames)
        answered = {}
        while len(answered) < len(sent):
            assert router.poll(60_000), f"answers missing for {set(sent) - set(answered)}"
            msg = router.recv_multipart()
            if msg[1] == b"done":
                task_id = struct.unpack("<Q", msg[2])[0]
                assert task_id in sent, task_id
                assert task_id not in answered, f"task {task_id} answered twice"
                answered[task_id] = msg[3]
        assert set(answered.values()) <= {b"error", b"cancelled"}, set(answered.values())
        assert worker.poll() is None, "the worker died"
    finally:
        worker.kill()
        worker.wait()
        log.close()
        router.close()
        ctx.term()
        subprocess.run(["rm", "-rf", short])


def test_rogue_peers_on_the_pool_socket_change_nothing(kernel):
    x = kernel.execute("import ferry, glob\nfrom ferry import _pool\nferry.workers(2)\n"
                       "ferry.map(abs, [1, 2], chunksize=1)\n"
                       "sorted(glob.glob(ferry.runtime_dir + '/pool-*')), "
                       "sorted(_pool.shared().pids())", timeout=60).ok()
    paths, pids = eval(x.text)
    rng = random.Random(SEED)
    ctx = zmq.Context()
    try:
        identities = [f"w{p}".encode() for p in pids] + [b"w1", b"w", b"", b"w99999999",
                                                         b"x" * 40, b"w-1"]
        for round_ in range(20):
            s = ctx.socket(zmq.DEALER)
            s.linger = 1000
            ident = rng.choice(identities)
            if ident:
                s.setsockopt(zmq.ROUTING_ID, ident)
            s.connect(f"ipc://{rng.choice(paths)}")
            for _ in range(20):
                s.send_multipart([rng.choice(VERBS[:5])] +
                                 [junk(rng) for _ in range(rng.randrange(0, 6))])
            s.close()
        y = kernel.execute("sorted(ferry.map(abs, range(-50, 0), chunksize=1)), "
                           "ferry.submit(pow, 3, 4).result(timeout=30)", timeout=120).ok()
        assert eval(y.text) == (sorted(range(1, 51)), 81)
    finally:
        ctx.term()

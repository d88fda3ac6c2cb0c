"""Input (and output) history for history_request, kept in SQLite.

Where: $FERRY_HISTORY_FILE if set (":memory:" keeps nothing), else
$XDG_DATA_HOME/ferry/history.sqlite, else ~/.local/share/ferry/history.sqlite.

Each kernel start is a new session, numbered by the database, so history
survives restarts and several kernels can share one file: WAL lets readers
run beside one writer, and the busy timeout makes a writer wait its turn
instead of failing.  If the file cannot be opened, history lives in memory
for this session and the kernel says so once on its log.

The schema and the answers follow IPython's HistoryManager: tail and search
run over every session, range reads one session (0 or absent = this one,
negative = counted back from this one), `output=True` pairs each input with
the text/plain of its result.

The database is opened (and the session numbered) at the first cell stored
or the first history request, not at start: SQLite and an open connection
are about 2 MiB that a kernel sitting idle does not need.
"""
import os
import sys

sqlite3 = None  # imported with the first connection


def _now():
    import datetime  # with the first stored cell, as sqlite3
    return datetime.datetime.now().isoformat(" ")


def _sqlite3():
    global sqlite3
    if sqlite3 is None:
        import sqlite3 as module
        sqlite3 = module
    return sqlite3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session INTEGER PRIMARY KEY AUTOINCREMENT,
    start TIMESTAMP, end TIMESTAMP, num_cmds INTEGER, remark TEXT);
CREATE TABLE IF NOT EXISTS history (
    session INTEGER, line INTEGER, source TEXT, source_raw TEXT,
    PRIMARY KEY (session, line));
CREATE TABLE IF NOT EXISTS output_history (
    session INTEGER, line INTEGER, output TEXT,
    PRIMARY KEY (session, line));
"""
_OUTPUT_LIMIT = 10000  # characters of a result kept for output=True


def default_path():
    path = os.environ.get("FERRY_HISTORY_FILE")
    if path:
        return path
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "ferry", "history.sqlite")


def _connect(path):
    if path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    db = _sqlite3().connect(path, timeout=10, isolation_level=None,
                            check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 10000")
    # Cells are appended and rarely read back: a small page cache (SQLite's
    # default is 2 MiB) keeps a long session from holding every page it wrote.
    db.execute("PRAGMA cache_size = -256")
    if path != ":memory:":
        _use_wal(db)
        db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(_SCHEMA)
    return db


_WAL_SWITCH_TIMEOUT = 10.0  # seconds, as the busy timeout


def _use_wal(db):
    """Switches the file to WAL, waiting for other connections as the busy
    timeout would.  SQLite answers the switch with "database is locked" at
    once, without calling the busy handler, while another connection opens
    the same new file or makes the same switch; a kernel that gave up there
    would keep its session in memory and lose it.  Once the file is in WAL
    (a lasting property of the file) the pragma only reads it."""
    import time  # with the first connection, as sqlite3
    deadline = time.monotonic() + _WAL_SWITCH_TIMEOUT
    pause = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except _sqlite3().OperationalError as e:
            busy = getattr(e, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY,
                                                            sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class History:
    """One kernel session's view of the history database."""

    def __init__(self, path=None):
        self.path = path or default_path()
        self._db = None
        self._session = None

    def _open(self):
        try:
            self._db = _connect(self.path)
            self._session = self._new_session()
        except (_sqlite3().Error, OSError) as e:
            print(f"ferry: history file {self.path} unusable ({e}); "
                  "keeping this session's history in memory", file=sys.__stderr__)
            self.path = ":memory:"
            self._db = _connect(self.path)
            self._session = self._new_session()

    @property
    def db(self):
        if self._db is None:
            self._open()
        return self._db

    @property
    def session(self):
        return self.db and self._session  # opened by the first use of either

    def _new_session(self):
        cur = self._db.execute(
            "INSERT INTO sessions (start, num_cmds, remark) VALUES (?, 0, '')", (_now(),))
        return cur.lastrowid

    def store(self, line, code, output=None):
        """Records cell `line` of this session; never fails the cell."""
        try:
            with self.db:
                # IMMEDIATE: the write lock is taken (waiting its turn) before
                # anything is read, so no other writer can make this
                # transaction's snapshot stale halfway through.
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?)",
                                (self.session, line, code, code))
                if output is not None:
                    self.db.execute("INSERT OR REPLACE INTO output_history VALUES (?, ?, ?)",
                                    (self.session, line, output[:_OUTPUT_LIMIT]))
                self.db.execute("UPDATE sessions SET num_cmds = ?, end = ? WHERE session = ?",
                                (line, _now(), self.session))
        except (_sqlite3().Error, UnicodeError, ValueError) as e:  # lone surrogates, ...
            print(f"ferry: history not saved: {e}", file=sys.__stderr__)

    # -------------------------------------------------------------- queries

    def _select(self, where, params, output, order="ASC", limit=None):
        return self._cursor(where, params, output, order, limit).fetchall()

    def _cursor(self, where, params, output, order="ASC", limit=None):
        cols = "h.session, h.line, h.source"
        join = ""
        if output:
            cols += ", o.output"
            join = " LEFT JOIN output_history o ON o.session = h.session AND o.line = h.line"
        sql = f"SELECT {cols} FROM history h{join} {where} " \
              f"ORDER BY h.session {order}, h.line {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self.db.execute(sql, params)

    @staticmethod
    def _shape(rows, output):
        if output:
            return [[s, n, [src, out]] for s, n, src, out in rows]
        return [[s, n, src] for s, n, src in rows]

    def tail(self, n, output=False):
        rows = self._select("", (), output, "DESC", n or None)
        return self._shape(rows[::-1], output)

    def range(self, session, start, stop, output=False):
        if not session:
            session = self.session
        elif session < 0:
            session += self.session
        where = "WHERE h.session = ? AND h.line >= ?"
        params = [session, start or 0]
        if stop:
            where += " AND h.line < ?"
            params.append(stop)
        return self._shape(self._select(where, params, output), output)

    def search(self, pattern, n=None, unique=False, output=False):
        # Newest first and stopping at the n-th match, so that finding the
        # last few matches of a long history reads the end of it only.
        if not unique:
            rows = self._select("WHERE h.source GLOB ?", (pattern or "*",), output,
                                "DESC", n)
            return self._shape(rows[::-1], output)
        cursor = self._cursor("WHERE h.source GLOB ?", (pattern or "*",), output, "DESC")
        seen, rows = set(), []
        for row in cursor:
            if row[2] not in seen:
                seen.add(row[2])
                rows.append(row)
                if n and len(rows) == n:
                    break
        cursor.close()
        return self._shape(rows[::-1], output)

    def request(self, req):
        op = req.get("hist_access_type", "tail")
        output = bool(req.get("output", False))
        n = req.get("n") or None
        try:
            if op == "tail":
                found = self.tail(n, output)
            elif op == "range":
                found = self.range(req.get("session") or 0, req.get("start") or 0,
                                   req.get("stop"), output)
            elif op == "search":
                found = self.search(req.get("pattern") or "*", n, bool(req.get("unique")),
                                    output)
            else:
                raise ValueError(f"unknown hist_access_type {op!r}")
        except (ValueError, TypeError, OverflowError, _sqlite3().Error) as e:
            return {"status": "error", "ename": type(e).__name__, "evalue": str(e),
                    "traceback": [], "history": []}
        return {"status": "ok", "history": found}

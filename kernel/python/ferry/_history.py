"""Input history for history_request: tail, range and search."""
import fnmatch


class History:
    """This session's inputs, numbered as the cells that ran them."""

    def __init__(self):
        self.session = 1
        self.entries = []  # (session, line, input)

    def store(self, line, code):
        self.entries.append((self.session, line, code))

    def request(self, req):
        op = req.get("hist_access_type", "tail")
        n = req.get("n") or 0
        if op == "tail":
            found = self.entries[-n:] if n else list(self.entries)
        elif op == "range":
            session = req.get("session", 0) or self.session
            if session < 0:
                session += self.session
            start, stop = req.get("start", 0), req.get("stop")
            found = [e for e in self.entries if e[0] == session and e[1] >= start
                     and (stop is None or e[1] < stop)]
        elif op == "search":
            pattern = req.get("pattern", "*")
            found = [e for e in self.entries if fnmatch.fnmatch(e[2], pattern)]
            if req.get("unique"):
                seen, unique = set(), []
                for e in reversed(found):
                    if e[2] not in seen:
                        seen.add(e[2])
                        unique.append(e)
                found = unique[::-1]
            if n:
                found = found[-n:]
        else:
            return {"status": "error", "ename": "ValueError",
                    "evalue": f"unknown hist_access_type {op!r}", "traceback": [],
                    "history": []}
        return {"status": "ok", "history": [list(e) for e in found]}

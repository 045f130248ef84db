"""Interleaved rounds: every case is sampled once per round, in a fresh random order, so
slow drifts of the machine (other load, CPU frequency, page cache) hit all tools alike."""

import random

import nsenv


class Case:
    """One thing to time. add(pod) -> Sample; dele(pod) -> Sample (optional). pool: list
    of fresh pods, one taken per round (None: the case needs no pod)."""

    def __init__(self, key, label, add, dele=None, pool=None):
        self.key, self.label, self.add, self.dele, self.pool = key, label, add, dele, pool


class Results:
    def __init__(self):
        self.samples = {}   # name -> [Sample or None per round]
        self.failures = {}  # name -> [message]

    def put(self, name, rnd, s):
        lst = self.samples.setdefault(name, [])
        while len(lst) < rnd:
            lst.append(None)
        if s.rc != 0:
            self.failures.setdefault(name, []).append(
                "rc %d: %s %s" % (s.rc, s.out.strip()[:300], s.err.strip()[-300:]))
            lst.append(None)
        else:
            lst.append(s)

    def secs(self, name):
        return [s.sec for s in self.samples.get(name, []) if s is not None]

    def by_round(self, name):
        return [s.sec if s is not None else None for s in self.samples.get(name, [])]

    def rss(self, name):
        return [s.rss_kib for s in self.samples.get(name, []) if s is not None]

    def count(self, name):
        return len(self.samples.get(name, []))


def _del(res, c, pod, r):
    d = c.dele(pod)
    if r >= 0:
        res.put(c.key + " DEL", r, d)
    elif d.rc != 0:
        raise nsenv.BenchError("warm-up DEL %s failed (rc %d): %s %s"
                               % (c.label, d.rc, d.out[-500:], d.err[-800:]))


def run_rounds(cases, rounds, warmup=1, res=None, progress=None, del_right_after=False):
    """warmup rounds first (discarded). ADDs in random order, then the DELs in another
    random order (or each DEL right after its ADD when del_right_after, which keeps the
    node's attachment count constant). Names: '<key> ADD' / '<key> DEL'."""
    res = res or Results()
    for r in range(-warmup, rounds):
        order = list(cases)
        random.shuffle(order)
        taken = {}
        for c in order:
            pod = c.pool.pop() if c.pool is not None else None
            taken[c.key] = pod
            s = c.add(pod)
            if r < 0:
                if s.rc != 0:
                    raise nsenv.BenchError("warm-up %s failed (rc %d): %s %s"
                                           % (c.label, s.rc, s.out[-500:], s.err[-800:]))
            else:
                res.put(c.key + " ADD", r, s)
            if del_right_after and c.dele:
                _del(res, c, pod, r)
        if not del_right_after:
            dels = [c for c in cases if c.dele]
            random.shuffle(dels)
            for c in dels:
                _del(res, c, taken[c.key], r)
        if progress and r >= 0 and (r + 1) % max(1, rounds // 4) == 0:
            progress(r + 1)
    return res

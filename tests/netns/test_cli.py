"""The tool's command line (issue 12, part 6): `podsteer --help` and `podsteer <command>
--help` print the usage asked for on stdout and exit 0; a bad invocation prints the usage
on stderr and exits 2. Run alone: run.py --plugin ... -k cli
"""

import os

from harness import fail

COMMANDS = ("version", "explain", "list", "install", "uninstall", "reconcile", "doctor", "gc")


def _expect_help(env, argv, want):
    r = env.cni(None, argv=argv)
    if r.rc != 0 or want not in r.out or r.err.strip():
        fail("podsteer %s: want exit 0 and %r on stdout (nothing on stderr):\n%s"
             % (" ".join(argv), want, r.show()))
    return r


def test_cli_help(env):
    # Directories for install/uninstall, should --help ever be taken for a real run.
    bindir, confdir = os.path.join(env.tmp, "bin"), os.path.join(env.tmp, "net.d")
    os.mkdir(bindir)
    os.mkdir(confdir)
    for argv in (["--help"], ["-h"], ["help"]):
        r = _expect_help(env, argv, "usage: podsteer <command>")
        for c in COMMANDS:
            if c not in r.out:
                fail("podsteer %s does not list %s:\n%s" % (argv[0], c, r.out))
    for c in COMMANDS:
        want = "usage: podsteer %s" % c
        _expect_help(env, [c, "--help"], want)
        _expect_help(env, [c, "-h"], want)
        _expect_help(env, ["help", c], want)
    # --help anywhere among a command's arguments; nothing is done.
    _expect_help(env, ["reconcile", "--conf", os.path.join(env.tmp, "none.json"), "--help"],
                 "usage: podsteer reconcile")
    _expect_help(env, ["install", "--cni-bin-dir", bindir, "--cni-conf-dir", confdir, "--help"],
                 "usage: podsteer install")
    _expect_help(env, ["list", "--state-dir", env.state_dir, "--help"], "usage: podsteer list")
    _expect_help(env, ["gc", "--state-dir", env.state_dir, "--help"], "usage: podsteer gc")
    _expect_help(env, ["doctor", "--state-dir", env.state_dir, "--help"], "usage: podsteer doctor")
    if os.listdir(bindir) or os.listdir(confdir):
        fail("install --help installed something: %s %s" % (os.listdir(bindir), os.listdir(confdir)))
    # Bad invocations are still errors: usage on stderr, exit 2, nothing on stdout.
    for argv in ([], ["bogus"], ["list", "--bogus"], ["help", "bogus"]):
        r = env.cni(None, argv=argv)
        if r.rc != 2 or r.out.strip() or "usage: podsteer" not in r.err:
            fail("podsteer %s: want exit 2 with the usage on stderr:\n%s" % (" ".join(argv), r.show()))

"""The session benchmark's CPU readings of PostgreSQL: a process tree whose children come and go."""

from __future__ import annotations

import subprocess
import sys

import psutil

from bench.session_rounds import tree_cpu

# A parent that starts a child, tells when the child has burned 0.3 s of CPU (still alive),
# then on a word from the test lets the child end, waits for it and says so.
CHILD = "import time\\nwhile time.process_time() < 0.3: pass\\nprint(flush=True)\\ninput()"
PARENT = f"""
import subprocess, sys
child = subprocess.Popen(
    [sys.executable, "-c", "{CHILD}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
)
child.stdout.readline()
print("burned", flush=True)
input()
child.stdin.write("\\n"); child.stdin.flush(); child.wait()
print("reaped", flush=True)
input()
"""


def test_a_child_that_ends_between_two_readings_keeps_its_cpu_in_the_tree():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdin is not None and parent.stdout is not None
    try:
        tree = [psutil.Process(parent.pid)]
        assert parent.stdout.readline().strip() == "burned"
        while_alive = tree_cpu(tree)
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.stdout.readline().strip() == "reaped"
        after_it_ended = tree_cpu(tree)
    finally:
        parent.kill()
        parent.wait()
    assert while_alive >= 0.3  # the living child's seconds are in the tree
    # Ended and reaped, its seconds are its parent's now: the difference does not go negative.
    assert after_it_ended >= while_alive - 0.005

"""The agent: a separate process hosting the client under test.

It runs exactly one flow, streams events (heartbeats, checkpoints, connection events,
the outcome) and answers snapshot requests. It is a separate process so that a client
that hangs, spins or crashes cannot take the runner down: the runner can always dump
its stacks (faulthandler on SIGUSR1 works while the loop is blocked), kill it and go on.

Protocol: JSON lines. Runner -> agent on stdin: `{"id": N, "op": ..., ...}`.
Agent -> runner on stdout: replies `{"re": N, ...}` and events `{"ev": ..., "t": ...}`.
stderr carries stack dumps and anything the client prints.
"""

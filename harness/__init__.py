"""nats-chaos: a chaos test harness for NATS clients."""

__version__ = "0.1.0"

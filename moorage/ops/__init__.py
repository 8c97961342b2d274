"""Durable operations: the table behind ``last_operation``, the worker, retry and backoff."""

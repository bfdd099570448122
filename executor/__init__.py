"""What happens: identity, the decision, upstream calls; ``Executor.call`` is the one choke point."""

"""Edge circuits: the graph, the one-pass masked forward, its slow reference, attribution."""

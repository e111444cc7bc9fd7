"""The supervisors' wallboard: one snapshot of queues, agents, figures, SLA
board and trends, served over HTTP and pushed live (docs/wallboard.md)."""

"""Pure routing decisions: who is calling, which county, which queue."""

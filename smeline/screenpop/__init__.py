"""Who is calling or chatting: what the agent sees when a contact arrives."""

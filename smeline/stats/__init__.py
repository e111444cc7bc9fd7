"""Contact-centre figures, defined once for the wallboard and the reports."""

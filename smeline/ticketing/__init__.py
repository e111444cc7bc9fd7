"""Work-order ticketing: business calendar and SLA deadlines."""

"""The expert pool: experts a desk agent can bring into a call (three-way
escalation), chosen by specialty, availability and fairness, and the log of
every consultation against the call and the expert."""

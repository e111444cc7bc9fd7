"""Live push to the browsers over socket.io: the agent console (``/agent``),
the supervisors' wallboard (``/supervisor``) and the web-chat widget
(``/visitor``). See docs/realtime.md."""

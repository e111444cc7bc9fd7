"""smeline: contact centre for the SME public service platforms of Chinese cities."""

__version__ = "0.1.0"

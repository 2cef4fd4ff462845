"""reachls: finds branches and PC-relative loads that run out of reach, on the right source line."""

__version__ = "0.1.0"

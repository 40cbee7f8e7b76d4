"""warehouse-rca: automated root-cause analysis for business metrics, pushed down into the warehouse."""

__version__ = "0.1.0"

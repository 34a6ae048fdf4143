"""lazcancel: cancel unshipped Lazada order items in bulk, with a per-item record."""

__version__ = "0.1.0"

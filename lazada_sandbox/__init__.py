"""A local imitation of the Lazada Open Platform gateway for tests, demos and benchmarks.

Shares no code with the lazcancel client: it signs, parses and answers on its own.
"""

from lazada_sandbox.faults import FaultPlan
from lazada_sandbox.ledger import LedgerEntry
from lazada_sandbox.model import Item, Order, ReasonOption, Seller
from lazada_sandbox.scenario import Scenario
from lazada_sandbox.server import SandboxServer, serve, serve_forever
from lazada_sandbox.state import SandboxState

__all__ = [
    "FaultPlan",
    "Item",
    "LedgerEntry",
    "Order",
    "ReasonOption",
    "SandboxServer",
    "SandboxState",
    "Scenario",
    "Seller",
    "serve",
    "serve_forever",
]

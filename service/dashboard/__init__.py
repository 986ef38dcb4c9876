"""The local web dashboard (French, 127.0.0.1 only): the queue, what is held and why, the card,
the matrix, the patients' choices and the Ségur report."""

from service.dashboard.app import DashboardServer, build_dashboard
from service.dashboard.panels import AlertsPanel, CardPanel, ReaderView, SituationView

__all__ = [
    "AlertsPanel",
    "CardPanel",
    "DashboardServer",
    "ReaderView",
    "SituationView",
    "build_dashboard",
]

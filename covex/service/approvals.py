"""Governance: policies on stages and aliases, approval requests, reviews, comments, rollback and placement.

One service, ``ApprovalService`` (``RegistryService.approvals``), made of one part per concept:

- ``covex.service.policies``: policies, global or per model, pattern or tag, and which applies;
- ``covex.service.requests``: opening, listing and cancelling requests; comments;
- ``covex.service.reviews``: approving and rejecting, the inbox, stale requests;
- ``covex.service.rollback``: rollback and placement at a moment.

Moves themselves are ``covex.service.placement``'s, shared with direct stage and alias changes.
"""

from __future__ import annotations

from covex.service.reviews import ReviewService
from covex.service.rollback import RollbackService


class ApprovalService(ReviewService, RollbackService):
    """Policies, requests, reviews, comments, rollback and placement at a moment."""

"""policies per model, pattern or tag; requests record the policy they were judged by

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope_kind", sa.String(length=16), server_default="global", nullable=False))
        batch_op.add_column(sa.Column("scope", sa.String(length=512), server_default="", nullable=False))
        batch_op.drop_constraint("uq_policies_target_kind_target", type_="unique")
        batch_op.create_unique_constraint(
            "uq_policies_target_kind_target_scope_kind_scope", ["target_kind", "target", "scope_kind", "scope"]
        )
    with op.batch_alter_table("transition_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("policy_scope", sa.String(length=530), server_default="global", nullable=False))
    # Every policy was global until now: a request was judged by its target's policy, if it still exists.
    op.execute(
        "UPDATE transition_requests SET policy_id = (SELECT policies.id FROM policies"
        " WHERE policies.target_kind = transition_requests.target_kind"
        " AND policies.target = transition_requests.target)"
    )


def downgrade() -> None:
    with op.batch_alter_table("transition_requests", schema=None) as batch_op:
        batch_op.drop_column("policy_scope")
        batch_op.drop_column("policy_id")
    op.execute("DELETE FROM policies WHERE scope_kind <> 'global'")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_constraint("uq_policies_target_kind_target_scope_kind_scope", type_="unique")
        batch_op.create_unique_constraint("uq_policies_target_kind_target", ["target_kind", "target"])
        batch_op.drop_column("scope")
        batch_op.drop_column("scope_kind")

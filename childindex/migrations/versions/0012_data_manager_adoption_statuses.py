"""two roles (data manager, adoption officer) and two record statuses (sealed, purged)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 14:00:00
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ROLES = (
    "'practitioner', 'designated_practitioner', 'child_protection', 'local_delivery_team', "
    "'directory_admin', 'auditor', 'system'"
)
_STATUSES = "'active', 'archived', 'merged'"


def _constraints(roles: str, statuses: str) -> None:
    with op.batch_alter_table("access_grant", schema=None) as batch_op:
        batch_op.drop_constraint("grant_role", type_="check")
        batch_op.create_check_constraint("grant_role", f"role IN ({roles})")
    with op.batch_alter_table("child", schema=None) as batch_op:
        batch_op.drop_constraint("child_status", type_="check")
        batch_op.create_check_constraint("child_status", f"status IN ({statuses})")


def upgrade() -> None:
    _constraints(f"{_ROLES}, 'data_manager', 'adoption_officer'", f"{_STATUSES}, 'sealed', 'purged'")


def downgrade() -> None:
    _constraints(_ROLES, _STATUSES)

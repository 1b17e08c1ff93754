"""login security: revocable sessions (users.session_version) and failed logins for throttling

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name_hash', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_login_failures_name_hash'), 'login_failures', ['name_hash'], unique=False)
    op.create_index(op.f('ix_login_failures_address'), 'login_failures', ['address'], unique=False)
    op.create_index(op.f('ix_login_failures_at'), 'login_failures', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_login_failures_at'), table_name='login_failures')
    op.drop_index(op.f('ix_login_failures_address'), table_name='login_failures')
    op.drop_index(op.f('ix_login_failures_name_hash'), table_name='login_failures')
    op.drop_table('login_failures')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_version')

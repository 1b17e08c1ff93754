"""indexes for a full database: the queue, the application page, batch exports, the registry

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:25:00

Why: at 20,000 applications and millions of fields the queue's counts and its page of details,
a batch's export and the 送受信確認 lookups must not scan whole tables (bench/scale_db.py).
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

INDEXES = [
    ('documents', 'batch_id'),
    ('applications', 'batch_id'),
    ('sheets', 'application_id'),
    ('findings', 'application_id'),
    ('messages', 'batch_id'),
    ('staff', 'facility_id'),
    ('confirmations', 'status'),
]


def upgrade() -> None:
    for table, column in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f'ix_{table}_{column}'), [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_{column}'))

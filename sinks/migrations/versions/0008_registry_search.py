"""the registry search: a search key on facilities and staff; applications by facility name

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 11:00:00

Why: the desk's registry search (review/registry.py) finds people by name, kana or e-mail however
they were typed (full-width, half-width, katakana or hiragana, spaces). The database cannot fold
kana, so each row keeps its values folded once (renraku.normalize.search_key) and the search is one
LIKE on one column. Existing rows get their key here; the models keep it on every later write.
"""
import sqlalchemy as sa
from alembic import op

from renraku import normalize

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

KEYED = {'facilities': ('name', 'name_kana'), 'staff': ('name', 'name_kana', 'email')}


def upgrade() -> None:
    conn = op.get_bind()
    for table, columns in KEYED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('search_key', sa.Text(), server_default='', nullable=False))
        t = sa.table(table, sa.column('id'), sa.column('search_key'), *(sa.column(c) for c in columns))
        keys = [{'row_id': row[0], 'key': normalize.search_key(*row[1:])}
                for row in conn.execute(sa.select(t.c.id, *(t.c[c] for c in columns)))]
        if keys:
            conn.execute(t.update().where(t.c.id == sa.bindparam('row_id')).values(search_key=sa.bindparam('key')),
                         keys)
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_applications_facility_name'), ['facility_name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_applications_facility_name'))
    for table in reversed(KEYED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('search_key')

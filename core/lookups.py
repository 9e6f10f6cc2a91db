"""`field__ilike="x"`: a substring match that a pg_trgm GIN index can serve.

Django's icontains becomes UPPER(col::text) LIKE UPPER(...) on PostgreSQL, which a plain
trigram index on the column cannot serve. ILIKE can. Elsewhere it is plain icontains.
"""

from django.db import models
from django.db.models.lookups import IContains


@models.CharField.register_lookup
@models.TextField.register_lookup
class ILike(IContains):
    lookup_name = "ilike"

    def as_sql(self, compiler, connection):
        return IContains(self.lhs, self.rhs).as_sql(compiler, connection)

    def as_postgresql(self, compiler, connection):
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs_sql} ILIKE {rhs_sql}", (*lhs_params, *rhs_params)

# The at-risk queue's index (issue 15): see Ticket.Meta.indexes.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0016_sla_revisions"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="ticket",
            index=models.Index(
                condition=models.Q(
                    ("merged_into__isnull", True),
                    ("status__in", ["new", "on_hold", "open", "pending"]),
                    models.Q(("sla_state", "breached"), _negated=True),
                ),
                fields=["due_at", "created_at", "id"],
                include=("first_response_at_risk_at", "resolution_at_risk_at", "sla_state"),
                name="tickets_at_risk_idx",
            ),
        ),
    ]

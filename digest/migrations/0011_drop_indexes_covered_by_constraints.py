import django.db.models.deletion
from django.db import migrations, models

# Each column leads another index already (a unique constraint's, or PaperTopic's
# topic-then-paper index). Dropped by name rather than by
# AlterField, which on PostgreSQL also drops and re-adds the foreign key, checking every
# row of the ledger again under a lock.
INDEXES = [
    ("digest_digest", "digest_digest_subscriber_id_4b589b07", "subscriber_id"),
    ("digest_digestitem", "digest_digestitem_digest_id_dd5a1900", "digest_id"),
    ("digest_digestitem", "digest_digestitem_subscriber_id_cf665253", "subscriber_id"),
    ("digest_papertopic", "digest_papertopic_paper_id_6c380541", "paper_id"),
    ("digest_papertopic", "digest_papertopic_topic_id_9b3cda2b", "topic_id"),
    ("digest_feedback", "digest_feedback_subscriber_id_4ad86add", "subscriber_id"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("digest", "0010_digest_lease"),
        ("subscriptions", "0004_delivery_event_message_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{index}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{column}")',
                )
                for table, index, column in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="digest",
                    name="subscriber",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="digests",
                        to="subscriptions.subscriber",
                    ),
                ),
                migrations.AlterField(
                    model_name="digestitem",
                    name="digest",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="items",
                        to="digest.digest",
                    ),
                ),
                migrations.AlterField(
                    model_name="digestitem",
                    name="subscriber",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="ledger",
                        to="subscriptions.subscriber",
                    ),
                ),
                migrations.AlterField(
                    model_name="papertopic",
                    name="paper",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="topic_scores",
                        to="digest.paper",
                    ),
                ),
                migrations.AlterField(
                    model_name="feedback",
                    name="subscriber",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="feedback",
                        to="subscriptions.subscriber",
                    ),
                ),
                migrations.AlterField(
                    model_name="papertopic",
                    name="topic",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="paper_scores",
                        to="digest.topic",
                    ),
                ),
            ],
        ),
    ]

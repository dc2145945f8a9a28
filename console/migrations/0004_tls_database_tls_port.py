from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0003_database_read_only"),
    ]

    operations = [
        migrations.AddField(
            model_name="database",
            name="tls_port",
            field=models.PositiveIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="database",
            name="tls_mode",
            field=models.CharField(
                choices=[
                    ("disabled", "Disabled"),
                    ("replica_ssl", "Between databases only"),
                    ("enabled", "All connections"),
                ],
                default="disabled",
                max_length=16,
            ),
        ),
    ]

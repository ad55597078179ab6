# The class `Model` becomes `AIModel` (issue 25). The table keeps its name, so no row moves:
# pinning db_table first makes the rename a state change for the table. What the database does see:
# the judge link table's column model_id becomes aimodel_id, and the index takes the class's name.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('catalog', '0006_field_and_parameter_families'),
        # Their foreign keys to catalog.model are renamed with it, so they must exist first.
        ('system', '0004_run_first_token_ms'),
        ('tests_app', '0006_merge_grade_source_and_cell_parameters'),
    ]

    operations = [
        migrations.AlterModelTable(
            name='model',
            table='catalog_model',
        ),
        migrations.RenameModel(
            old_name='Model',
            new_name='AIModel',
        ),
        migrations.AlterModelOptions(
            name='aimodel',
            options={'ordering': ['-created_at'], 'verbose_name': 'model'},
        ),
        migrations.RenameIndex(
            model_name='aimodel',
            new_name='aimodel_org_live',
            old_name='model_org_live',
        ),
    ]

"""TestGrade.source takes the one GradeSource attempts use: the rubric grader's "auto" is "ai",
staff's "manual" is "reviewed"."""

from django.db import migrations, models

RENAMED = {"auto": "ai", "manual": "reviewed"}


def forward(apps, schema_editor):
    grades = apps.get_model("tests_app", "TestGrade").objects
    for old, new in RENAMED.items():
        grades.filter(source=old).update(source=new)


def backward(apps, schema_editor):
    grades = apps.get_model("tests_app", "TestGrade").objects
    for old, new in RENAMED.items():
        grades.filter(source=new).update(source=old)


class Migration(migrations.Migration):
    dependencies = [
        ("tests_app", "0004_merge_leases_and_repeats"),
    ]

    operations = [
        migrations.AlterField(
            model_name="testgrade",
            name="source",
            field=models.CharField(
                choices=[
                    ("ai", "AI grader"),
                    ("agent", "Given by an agent client"),
                    ("copied", "Copied from a previous attempt"),
                    ("reviewed", "Reviewed by staff"),
                ],
                default="ai",
                max_length=10,
            ),
        ),
        migrations.RunPython(forward, backward),
    ]

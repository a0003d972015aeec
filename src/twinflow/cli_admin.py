"""`twinflow admin`: set up a shared PostgreSQL register and give clerks the right to record
in it (and never to alter or delete what is recorded)."""

from __future__ import annotations

from typing import Any

import click

from twinflow.cli_base import Settings, pass_settings
from twinflow.errors import InvalidInput, NotFound, StorageError


@click.group()
def admin() -> None:
    """Set up a shared register on PostgreSQL and manage the clerks who record in it.

    \b
    Example:
      twinflow --db postgresql://owner@db.example.org/register admin install
      twinflow --db postgresql://owner@db.example.org/register admin grant-clerk anna
    """


@admin.command()
@pass_settings
def install(settings: Settings) -> None:
    """Create the register's tables, triggers and read models now, if they are not there.

    Run it as the database role that is to own the register: clerks may not create tables,
    so the register must exist before they record. Recording the first case does the same.

    \b
    Example:
      twinflow --db postgresql://owner@db.example.org/register admin install
      twinflow --db "postgresql://owner@db.example.org/city?schema=register" admin install
    """
    register = settings.register(create=True)
    where = register.location.describe()
    register.close()
    click.echo(f"the register at {where} is ready")


@admin.command("grant-clerk")
@click.argument("role")
@click.option("--sql", "show", is_flag=True, help="Print the SQL instead of running it.")
@pass_settings
def grant_clerk(settings: Settings, role: str, show: bool) -> None:
    """Let a PostgreSQL role record and read, but not alter or delete anything recorded.

    ROLE must exist (createuser --pwprompt ROLE). Run this as the register's owner. The
    role gets SELECT and INSERT on the events, the use of their sequence and of the insert
    lock, SELECT on twinflow_meta and the snapshots, and the read models; UPDATE, DELETE and
    TRUNCATE on the events are taken away (and refused by triggers in any case). What the
    role records names the role as actor; an --actor it gives is kept as on_behalf_of.

    \b
    Example:
      createuser --pwprompt anna
      twinflow --db postgresql://owner@db.example.org/register admin grant-clerk anna
      twinflow --db postgresql://anna@db.example.org/register --actor "A. de Vries" \\
          note coevorden-brest letter --on 2024-05 --summary "Letter to the mayor"
    """
    _change_rights(settings, role, grant=True, show=show)


@admin.command("revoke-clerk")
@click.argument("role")
@click.option("--sql", "show", is_flag=True, help="Print the SQL instead of running it.")
@pass_settings
def revoke_clerk(settings: Settings, role: str, show: bool) -> None:
    """Take back every right `grant-clerk` gave a PostgreSQL role.

    What the role recorded stays in the register, under its name.

    \b
    Example:
      twinflow --db postgresql://owner@db.example.org/register admin revoke-clerk anna
    """
    _change_rights(settings, role, grant=False, show=show)


def _change_rights(settings: Settings, role: str, *, grant: bool, show: bool) -> None:
    import psycopg

    from twinflow import clerks, postgres

    if not role.strip() or len(role) > 63:
        raise InvalidInput(
            f"role {role!r} is not a PostgreSQL role name: give 1 to 63 characters, e.g. anna"
        )
    register = settings.register(create=True)
    location = register.location
    register.close()
    if location.kind != "postgres":
        raise InvalidInput(
            f"the register {location.describe()} is a SQLite file, which has no database "
            "roles: clerks need a PostgreSQL register (--db postgresql://...)"
        )
    with postgres.connect(location) as conn:
        try:
            found = conn.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)
            ).fetchone()
            if found is None:
                raise NotFound(
                    f"there is no PostgreSQL role {role!r}: create it first "
                    f"(createuser --pwprompt {role}), then grant again"
                )
            statements = clerks.rights(conn, location, role, grant=grant)
            if show:
                for statement in statements:
                    click.echo(f"{statement.as_string(conn)};")
                return
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
        except psycopg.Error as exc:
            raise StorageError(postgres.explain(str(exc), location)) from None
    _report(role, location.describe(), found, grant=grant)


def _report(role: str, where: str, found: Any, *, grant: bool) -> None:
    if not grant:
        click.echo(f"{role} may no longer record in or read {where}")
        return
    click.echo(f"{role} may now record in and read {where}, but not alter or delete")
    if found["rolsuper"]:
        click.echo(
            f"note: {role} is a superuser, for whom PostgreSQL checks no rights; the triggers "
            "still refuse UPDATE and DELETE, but give clerks an ordinary role",
            err=True,
        )


@admin.command("check-actors")
@pass_settings
def check_actors(settings: Settings) -> None:
    """Check that every event names as its actor the database role that stored it.

    PostgreSQL writes down, beside each stored event, the role that inserted it. An event
    whose actor is another name was written past twinflow, by someone who can insert.
    Prints nothing and exits 0 when all agree; one line per event otherwise, exit 1.

    \b
    Example:
      twinflow --db postgresql://owner@db.example.org/register admin check-actors
    """
    import psycopg

    from twinflow import clerks, postgres

    register = settings.register()
    location = register.location
    if location.kind != "postgres":
        register.close()
        raise InvalidInput(
            f"the register {location.describe()} is a SQLite file, which records no database "
            "roles: actors can be checked on a PostgreSQL register only"
        )
    with postgres.connect(location) as conn:
        try:
            found = clerks.impostors(conn, register.events.mapper)
        except psycopg.Error as exc:
            raise StorageError(postgres.explain(str(exc), location)) from None
        finally:
            register.close()
    for impostor in found:
        click.echo(str(impostor))
    if found:
        raise StorageError(
            f"{len(found)} event(s) in {location.describe()} name an actor other than the "
            "role that stored them: they were written past twinflow; see the lines above"
        )

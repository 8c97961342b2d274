"""``moorage services[:create|:info|:update|:destroy|:bind|:unbind|:rotate]``.

Why ``services:create`` streams: provisioning may take minutes at an asynchronous broker,
so by default the CLI prints the controller's progress lines until the service is ready
or failed; ``--wait=false`` returns at once and ``services:info`` shows how it goes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import httpx

from moorage.cli.client import Client, CliError
from moorage.cli.options import app_option, json_option, print_json, print_table, resolve_app


def parse_parameters(raw: str | None) -> dict[str, Any] | None:
    """``-p '{"k": 1}'`` or ``-p @params.json``."""
    if raw is None:
        return None
    text = raw
    if raw.startswith("@"):
        try:
            text = Path(raw[1:]).read_text()
        except OSError as exc:
            raise CliError(f"cannot read parameters from {raw[1:]}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f'the parameters are not valid JSON ({exc}); e.g. -p \'{{"key": "value"}}\'') from None
    if not isinstance(value, dict):
        raise CliError('the parameters must be a JSON object, e.g. -p \'{"key": "value"}\'')
    return value


def _error_message(response: httpx.Response) -> str:
    try:
        return response.json().get("message") or response.text
    except ValueError:
        return response.text.strip() or response.reason_phrase


def _stream(client: Client, path: str, body: dict[str, Any], quiet: bool) -> dict[str, Any]:
    result = None
    try:
        with client.http.stream("POST", path, json=body) as response:
            if response.status_code >= 400:
                response.read()
                raise CliError(_error_message(response))
            if response.status_code == 202:
                response.read()
                return response.json()
            for line in response.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if "log" in event:
                    click.echo(event["log"], err=quiet)
                elif "error" in event:
                    raise CliError(event["error"]["message"])
                elif "result" in event:
                    result = event["result"]
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach the controller at {client.url} ({exc}); is `moorage up` running?"
        ) from None
    if result is None:
        raise CliError(
            "the controller closed the connection before the service was ready; see `moorage services`"
        )
    return result


def _print_output(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    for line in result.get("output", []):
        click.echo(line)


@click.command("services")
@json_option
def list_services(as_json: bool) -> None:
    """List your service instances: service, plan, state and bound apps."""
    items = Client.from_profile().get("/v2/services")["results"]
    if as_json:
        print_json(items)
    elif not items:
        click.echo("No services yet; see `moorage marketplace`, then `moorage services:create`")
    else:
        print_table(
            ["Name", "Service", "Plan", "State", "Apps"],
            [(i["name"], i["service"], i["plan"], i["state"], ", ".join(i["apps"])) for i in items],
        )


@click.command("services:create")
@click.argument("service")
@click.argument("plan", required=False)
@click.argument("name", required=False)
@click.option("-p", "--parameters", help="Parameters as JSON, or @FILE holding JSON.")
@click.option("--broker", help="The broker, when several offer SERVICE.")
@click.option("--wait", type=click.BOOL, default=True, show_default=True, help="Wait until it is ready.")
@json_option
def create(
    service: str,
    plan: str | None,
    name: str | None,
    parameters: str | None,
    broker: str | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Create a service instance NAME of SERVICE on PLAN (without PLAN: the plans to choose from)."""
    client = Client.from_profile()
    if plan is None or name is None:
        raise CliError(_which_plan(client, service, broker, plan))
    body: dict[str, Any] = {"service": service, "plan": plan, "name": name, "wait": wait}
    params = parse_parameters(parameters)
    if params is not None:
        body["parameters"] = params
    if broker:
        body["broker"] = broker
    result = _stream(client, "/v2/services", body, quiet=as_json)
    if as_json:
        print_json(result)
    elif result["state"] == "ready":
        click.echo(f"{name} is ready ({result['service']} {result['plan']})")
    else:
        click.echo(f"{name} is {result['state']}; `moorage services:info {name}` shows its progress")


def _which_plan(client: Client, service: str, broker: str | None, plan: str | None) -> str:
    """What to type instead of an incomplete ``services:create``: the offering's plans, the
    first (the catalog's suggestion, as Heroku's default plan) spelled out in full."""
    offering = client.get(f"/v2/marketplace/{service}", **({"broker": broker} if broker else {}))
    plans = [p["name"] for p in offering["plans"]]
    chosen = plan or plans[0]
    listed = ", ".join(f"{p} (suggested)" if p == plans[0] else p for p in plans)
    what = "a name for the instance" if plan else "a plan and a name"
    return (
        f"give {what}: {service} has the plans {listed}; "
        f"for example `moorage services:create {service} {chosen} my-{service}`"
    )


@click.command("services:info")
@click.argument("name")
@json_option
def info(name: str, as_json: bool) -> None:
    """Show a service instance."""
    data = Client.from_profile().get(f"/v2/services/{name}")
    if as_json:
        print_json(data)
        return
    bound = ", ".join(f"{b['app']} (as {b['as']})" for b in data["bindings"]) or "none"
    print_table(
        ["Field", "Value"],
        [
            ("Name", data["name"]),
            ("Service", data["service"]),
            ("Plan", data["plan"]),
            ("Broker", data["broker"]),
            ("State", data["state"]),
            ("Last operation", data["description"]),
            ("Bound to", bound),
            ("Owner", data["owner"]),
        ],
    )


@click.command("services:update")
@click.argument("name")
@click.option("--plan", help="The new plan.")
@click.option("-p", "--parameters", help="Parameters as JSON, or @FILE holding JSON.")
@json_option
def update(name: str, plan: str | None, parameters: str | None, as_json: bool) -> None:
    """Change a service instance's plan or parameters."""
    body: dict[str, Any] = {}
    if plan:
        body["plan"] = plan
    params = parse_parameters(parameters)
    if params is not None:
        body["parameters"] = params
    if not body:
        raise click.UsageError("give --plan and/or -p JSON")
    result = Client.from_profile().request("PATCH", f"/v2/services/{name}", body)
    _print_output(result, as_json)
    if not as_json:
        click.echo(f"{name} is {result['state']} on plan {result['plan']}")


@click.command("services:destroy")
@click.argument("name")
@click.option("--unbind", is_flag=True, help="Unbind it from every app first.")
@click.option("--confirm", help="NAME again, to confirm without a prompt.")
def destroy(name: str, unbind: bool, confirm: str | None) -> None:
    """Destroy a service instance and its data (refused while bound, unless --unbind)."""
    if confirm != name:
        click.confirm(f"Destroy {name} and all its data?", abort=True)
    client = Client.from_profile()
    result = client.request("DELETE", f"/v2/services/{name}", params={"unbind": "1"} if unbind else None)
    _print_output(result, False)


@click.command("services:bind")
@click.argument("name")
@app_option
@click.option("--as", "alias", help="Config var prefix for this binding (--as ANALYTICS → ANALYTICS_URL).")
@click.option("-p", "--parameters", help="Binding parameters as JSON, or @FILE holding JSON.")
@json_option
def bind(name: str, app: str | None, alias: str | None, parameters: str | None, as_json: bool) -> None:
    """Bind a service to an app: its credentials become config vars in a new release."""
    target = resolve_app(app)
    body: dict[str, Any] = {"app": target}
    if alias:
        body["as"] = alias
    params = parse_parameters(parameters)
    if params is not None:
        body["parameters"] = params
    result = Client.from_profile().post(f"/v2/services/{name}/bindings", body)
    _print_output(result, as_json)
    if not as_json:
        version = result["release"]["version"] if result.get("release") else "?"
        click.echo(f"Bound {name} to {target} as {', '.join(result['config_vars'])} -> v{version}")


@click.command("services:unbind")
@click.argument("name")
@app_option
@json_option
def unbind(name: str, app: str | None, as_json: bool) -> None:
    """Unbind a service from an app (a new release without its vars)."""
    target = resolve_app(app)
    result = Client.from_profile().delete(f"/v2/services/{name}/bindings/{target}")
    _print_output(result, as_json)
    if not as_json:
        click.echo(f"Unbound {name} from {target}; removed {', '.join(result['removed']) or 'nothing'}")


@click.command("services:rotate")
@click.argument("name")
@app_option
@json_option
def rotate(name: str, app: str | None, as_json: bool) -> None:
    """Give an app new credentials for a service, with no downtime; the old ones stop working."""
    target = resolve_app(app)
    result = Client.from_profile().post(f"/v2/services/{name}/bindings/{target}/rotate")
    _print_output(result, as_json)
    if not as_json:
        click.echo(f"Rotated the credentials of {name} on {target}")


commands = [list_services, create, info, update, destroy, bind, unbind, rotate]

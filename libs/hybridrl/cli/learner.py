"""``hybridrl learner``: submit the learner PyTorchJob to a cluster and follow it.

``submit`` builds the job with ``hybridrl.k8s.build_learner_pytorchjob`` (the same object as
``k8s/learner-pytorchjob.yaml``) and creates it with the Kubeflow SDK's ``TrainingClient``, or
prints it with ``--dry-run``. ``status`` reads the job's conditions and pods, once or, with
``--follow``, until it succeeds or fails. A resubmitted job with the same run resumes from the
newest checkpoint under s3://<bucket>/runs/<run_name>/learner/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from kubeflow.training import TrainingClient  # type: ignore[import-untyped]
from kubernetes import config as kube_config  # type: ignore[import-untyped]
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from hybridrl.k8s import (
    KafkaSaslSecret,
    KafkaTlsSecret,
    Launcher,
    LearnerJobSpec,
    ObjectStoreSecret,
    build_learner_pytorchjob,
    pytorchjob_to_yaml,
)
from hybridrl.k8s.job_status import TERMINAL_STATES, job_state, replica_summary

learner_app = typer.Typer(
    help="Submit the learner PyTorchJob to a cluster and follow it.", no_args_is_help=True
)

_DEFAULTS = LearnerJobSpec()
_IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

KubeconfigOption = Annotated[
    Path | None,
    typer.Option("--kubeconfig", exists=True, dir_okay=False, help="Default: ~/.kube/config."),
]
ContextOption = Annotated[str | None, typer.Option(help="kubeconfig context; default: current.")]
NamespaceOption = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Default: the context's namespace.")
]


@learner_app.command("submit")
def submit(
    name: Annotated[
        str | None, typer.Option(help="Name of the PyTorchJob; default <release>-learner.")
    ] = None,
    release: Annotated[
        str, typer.Option(help="The Helm release whose ConfigMap and Secrets the job reads.")
    ] = _DEFAULTS.release,
    image: Annotated[str, typer.Option(help="The learner image.")] = _DEFAULTS.image,
    workers: Annotated[
        int, typer.Option(help="Worker pods besides the Master.")
    ] = _DEFAULTS.workers,
    nproc_per_node: Annotated[
        int, typer.Option(help="Learner ranks per pod (one per GPU).")
    ] = _DEFAULTS.nproc_per_node,
    gpus: Annotated[
        int, typer.Option(help="GPUs per pod (nvidia.com/gpu); 0 runs on CPU.")
    ] = _DEFAULTS.gpus_per_node,
    launcher: Annotated[
        Launcher, typer.Option(help="How each pod starts its ranks.")
    ] = _DEFAULTS.launcher,
    cpu: Annotated[str, typer.Option(help="CPU request per pod.")] = _DEFAULTS.cpu,
    memory: Annotated[str, typer.Option(help="Memory request per pod.")] = _DEFAULTS.memory,
    memory_limit: Annotated[
        str, typer.Option(help="Memory limit per pod.")
    ] = _DEFAULTS.memory_limit,
    config_map: Annotated[
        str | None, typer.Option(help="ConfigMap with learner.yaml; default <release>-config.")
    ] = None,
    object_store_secret: Annotated[
        str | None,
        typer.Option(help="Secret with the S3 key pair (the chart's objectStore.existingSecret)."),
    ] = None,
    access_key_key: Annotated[str, typer.Option(help="Its key of the access key.")] = "accessKey",
    secret_key_key: Annotated[str, typer.Option(help="Its key of the secret key.")] = "secretKey",
    kafka_sasl_secret: Annotated[
        str | None, typer.Option(help="Secret with the Kafka SASL password.")
    ] = None,
    kafka_sasl_password_key: Annotated[
        str, typer.Option(help="Its key of the password.")
    ] = "password",
    kafka_tls_secret: Annotated[
        str | None, typer.Option(help="Secret with the brokers' CA (key ca.crt).")
    ] = None,
    kafka_tls_client_auth: Annotated[
        bool, typer.Option(help="Mutual TLS: also mount tls.crt and tls.key of that Secret.")
    ] = False,
    image_pull_secret: Annotated[
        list[str] | None, typer.Option(help="Secret to pull the image with; repeatable.")
    ] = None,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the job as YAML; create nothing.")
    ] = False,
) -> None:
    """Create the learner PyTorchJob (Master 1 + Worker N) against an installed release.

    A job of a run that has checkpoints resumes from the newest one.
    """
    try:
        spec = LearnerJobSpec(
            name=name,
            namespace=namespace,
            release=release,
            image=image,
            image_pull_secrets=tuple(image_pull_secret or ()),
            workers=workers,
            nproc_per_node=nproc_per_node,
            gpus_per_node=gpus,
            launcher=launcher,
            cpu=cpu,
            memory=memory,
            memory_limit=memory_limit,
            config_map=config_map,
            object_store_secret=(
                ObjectStoreSecret(
                    name=object_store_secret,
                    access_key_key=access_key_key,
                    secret_key_key=secret_key_key,
                )
                if object_store_secret
                else None
            ),
            kafka_sasl_secret=(
                KafkaSaslSecret(name=kafka_sasl_secret, password_key=kafka_sasl_password_key)
                if kafka_sasl_secret
                else None
            ),
            kafka_tls_secret=(
                KafkaTlsSecret(name=kafka_tls_secret, client_auth=kafka_tls_client_auth)
                if kafka_tls_secret
                else None
            ),
        )
    except ValidationError as error:
        raise typer.BadParameter(_validation_message(error)) from error
    job = build_learner_pytorchjob(spec)
    if dry_run:
        typer.echo(pytorchjob_to_yaml(job), nl=False)
        return
    client, namespace = _training_client(kubeconfig, context, namespace)
    try:
        client.create_job(job=job, namespace=namespace)
    except (RuntimeError, TimeoutError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from error
    typer.echo(f"created pytorchjob {namespace}/{spec.job_name}")
    typer.echo(f"follow it with: hybridrl learner status {spec.job_name} -n {namespace} --follow")


@learner_app.command("status")
def status(
    name: Annotated[str, typer.Argument(help="Name of the PyTorchJob.")],
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Poll until the job succeeds or fails.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.01, help="Seconds between polls with --follow.")
    ] = 10.0,
) -> None:
    """Show the job's state and pods; with --follow, exit 0 when it succeeds, 1 when it fails."""
    client, namespace = _training_client(kubeconfig, context, namespace)
    console = Console()
    job = _get_job(client, name, namespace)
    if follow:
        job = _follow(client, console, job, interval)
    console.print(_conditions_table(client, job))
    if follow and not client.is_job_succeeded(job=job):
        raise typer.Exit(code=1)


def _follow(client: Any, console: Console, job: Any, interval: float) -> Any:
    """Poll the job until it succeeds or fails; a live status line on a terminal, else one
    printed line per change (for logs)."""
    shown = _status_line(client, job)
    with console.status(shown) as line:
        if not console.is_terminal:
            console.print(shown)
        while job_state(client.get_job_conditions(job=job)) not in TERMINAL_STATES:
            time.sleep(interval)
            job = _get_job(client, job.metadata.name, job.metadata.namespace)
            current = _status_line(client, job)
            if current != shown:
                shown = current
                line.update(current)
                if not console.is_terminal:
                    console.print(current)
    return job


def _training_client(
    kubeconfig: Path | None, context: str | None, namespace: str | None
) -> tuple[Any, str]:
    """The Kubeflow SDK's client for the kubeconfig's cluster (or, in a pod, the pod's own)."""
    config_file = str(kubeconfig) if kubeconfig is not None else None
    try:
        if namespace is None:
            namespace = _default_namespace(config_file, context)
        client = TrainingClient(config_file=config_file, context=context, namespace=namespace)
    except kube_config.ConfigException as error:
        typer.echo(f"error: no usable Kubernetes configuration: {error}", err=True)
        raise typer.Exit(code=1) from error
    return client, namespace


def _default_namespace(config_file: str | None, context: str | None) -> str:
    """The context's namespace; in a pod without a kubeconfig, the pod's own."""
    if config_file is None and _IN_CLUSTER_NAMESPACE.exists():
        try:
            kube_config.list_kube_config_contexts()
        except kube_config.ConfigException:
            return _IN_CLUSTER_NAMESPACE.read_text().strip() or "default"
    contexts, current = kube_config.list_kube_config_contexts(config_file=config_file)
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    if chosen is None:
        raise kube_config.ConfigException(f"context {context!r} is not in the kubeconfig")
    return str(chosen.get("context", {}).get("namespace") or "default")


def _get_job(client: Any, name: str, namespace: str) -> Any:
    try:
        return client.get_job(name=name, namespace=namespace)
    except (RuntimeError, TimeoutError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from error


def _status_line(client: Any, job: Any) -> str:
    state = job_state(client.get_job_conditions(job=job))
    return f"{job.metadata.name}: {state} ({replica_summary(job)})"


def _conditions_table(client: Any, job: Any) -> Table:
    conditions = client.get_job_conditions(job=job)
    table = Table(title=f"pytorchjob {job.metadata.namespace}/{job.metadata.name}")
    for column in ("condition", "status", "since", "reason", "message"):
        table.add_column(column)
    for condition in conditions:
        since = condition.last_transition_time
        table.add_row(
            condition.type,
            condition.status,
            since.isoformat() if since is not None else "",
            condition.reason or "",
            condition.message or "",
        )
    table.caption = f"state {job_state(conditions)}; pods: {replica_summary(job)}"
    return table


def _validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'job'}: {item['msg']}"
        for item in error.errors()
    )

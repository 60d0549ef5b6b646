{{/*
The learner's launch, the command of hybridrl.k8s.launchers.learner_command: one launcher per
pod (torchrun or the DeepSpeed launcher) that starts nprocPerNode ranks of `hybridrl serve
learner`. The training operator (PyTorchJob with nprocPerNode) and Trainer's torch policy
(TrainingRuntime with mlPolicy.torch) set the same variables on every pod: PET_NNODES,
PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT. torchrun reads them itself;
the DeepSpeed script below passes them as flags.
*/}}

{{- define "hybridrl.learnerConfigPath" -}}
{{- printf "%s/learner.yaml" (include "hybridrl.configDir" .) -}}
{{- end -}}

{{/*
The DeepSpeed launcher's script. --no_ssh: every pod starts its own ranks. --no_local_rank:
`hybridrl serve` takes no --local_rank argument (LOCAL_RANK is in the environment). DeepSpeed
0.19 refuses --num_nodes above 1 without a hostfile of one line per pod: each pod writes it to
/tmp (an emptyDir) from PET_NNODES, so the job's shape comes from the job controller alone.
Kubernetes expands only $(NAME) of a defined variable in a command; $((...)) reaches the shell.
*/}}
{{- define "hybridrl.deepspeedScript" -}}
set -eu
hostfile=/tmp/hybridrl/hostfile
mkdir -p "${hostfile%/*}"
: > "$hostfile"
node=0
while [ "$node" -lt "$PET_NNODES" ]; do
  echo "node-$node slots=$PET_NPROC_PER_NODE" >> "$hostfile"
  node=$((node + 1))
done
exec deepspeed --hostfile="$hostfile" --no_ssh \
  --num_nodes="$PET_NNODES" --node_rank="$PET_NODE_RANK" \
  --master_addr="$PET_MASTER_ADDR" --master_port="$PET_MASTER_PORT" \
  --num_gpus="$PET_NPROC_PER_NODE" --no_local_rank \
  --module hybridrl serve learner --config {{ include "hybridrl.learnerConfigPath" . }}
{{- end -}}

{{/* The learner container's command, a YAML list: a PyTorchJob replica or a runtime's node. */}}
{{- define "hybridrl.learnerCommand" -}}
{{- if eq .context.Values.learner.launcher "deepspeed" -}}
- /bin/sh
- -c
- |
  {{- include "hybridrl.deepspeedScript" .context | nindent 2 }}
{{- else -}}
{{- $config := include "hybridrl.learnerConfigPath" .context -}}
{{- list "torchrun" "--module" "hybridrl" "serve" "learner" "--config" $config | toYaml -}}
{{- end -}}
{{- end -}}

{{/*
The learner's launch: one launcher per pod (torchrun or the DeepSpeed launcher) that starts
nprocPerNode ranks of `hybridrl serve learner`. The training operator (and Trainer's torch
runtime) set PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT, PET_NPROC_PER_NODE;
torchrun reads them itself, the DeepSpeed launcher gets them as flags.
*/}}

{{- define "hybridrl.learnerServeArgs" -}}
{{- $config := printf "%s/learner.yaml" (include "hybridrl.configDir" .) -}}
{{- list "--module" "hybridrl" "serve" "learner" "--config" $config | toJson -}}
{{- end -}}

{{/*
Flags of the DeepSpeed launcher. --no_ssh: every pod starts its own ranks. --no_local_rank:
`hybridrl serve` takes no --local_rank argument (LOCAL_RANK is in the environment). The hostfile
lists one line per pod: without it DeepSpeed 0.19 refuses --num_nodes above 1.
*/}}
{{- define "hybridrl.deepspeedFlags" -}}
{{- $values := .context.Values -}}
{{- list
  (printf "--hostfile=%s/learner-hostfile" (include "hybridrl.configDir" .))
  "--no_ssh" "--no_local_rank"
  (printf "--num_nodes=%s" .nnodes) (printf "--node_rank=%s" .nodeRank)
  (printf "--master_addr=%s" .masterAddr) (printf "--master_port=%s" .masterPort)
  (printf "--num_gpus=%d" (int $values.learner.nprocPerNode))
  | toJson -}}
{{- end -}}

{{/* The container command of a PyTorchJob replica or a torch-runtime TrainJob. */}}
{{- define "hybridrl.learnerCommand" -}}
{{- $serve := include "hybridrl.learnerServeArgs" .context | fromJsonArray -}}
{{- if eq .context.Values.learner.launcher "deepspeed" -}}
{{- $flags := include "hybridrl.deepspeedFlags" (dict "context" .context
  "nnodes" "$(PET_NNODES)" "nodeRank" "$(PET_NODE_RANK)"
  "masterAddr" "$(PET_MASTER_ADDR)" "masterPort" "$(PET_MASTER_PORT)") | fromJsonArray -}}
{{- concat (list "deepspeed") $flags $serve | toJson -}}
{{- else -}}
{{- concat (list "torchrun") $serve | toJson -}}
{{- end -}}
{{- end -}}

{{/*
The command under an MPI runtime (Trainer's deepspeed-distributed): the launcher pod runs
mpirun, which starts one launcher per pod (ppr:1:node) through the runtime's SSH; each takes
its node rank from OpenMPI. Rank 0 runs on the first host of the runtime's hostfile, the
launcher pod (runLauncherAsNode). Processes started over SSH do not see the pod's environment,
so mpirun forwards the secret variables (-x).
*/}}
{{- define "hybridrl.learnerMpiCommand" -}}
{{- $values := .Values -}}
{{- $name := include "hybridrl.componentName" (dict "context" . "component" "learner") -}}
{{- $nnodes := add 1 (int $values.learner.workers) | toString -}}
{{- $masterAddr := printf "%s-launcher-0-0.%s" $name $name -}}
{{- $port := int $values.learner.masterPort | toString -}}
{{- $serve := include "hybridrl.learnerServeArgs" . | fromJsonArray -}}
{{- $launch := list -}}
{{- if eq $values.learner.launcher "deepspeed" -}}
{{- $flags := include "hybridrl.deepspeedFlags" (dict "context" .
  "nnodes" $nnodes "nodeRank" "${OMPI_COMM_WORLD_RANK}"
  "masterAddr" $masterAddr "masterPort" $port) | fromJsonArray -}}
{{- $launch = concat (list "deepspeed") $flags $serve -}}
{{- else -}}
{{- $launch = concat (list "torchrun"
  (printf "--nnodes=%s" $nnodes)
  (printf "--nproc-per-node=%d" (int $values.learner.nprocPerNode))
  "--node-rank=${OMPI_COMM_WORLD_RANK}"
  (printf "--master-addr=%s" $masterAddr)
  (printf "--master-port=%s" $port)) $serve -}}
{{- end -}}
{{- $forward := list -}}
{{- $secretEnv := include "hybridrl.secretEnv" (dict "context" . "component" "learner") -}}
{{- range $env := $secretEnv | fromYamlArray -}}
{{- $forward = concat $forward (list "-x" $env.name) -}}
{{- end -}}
{{- $mpirun := list "mpirun" "--np" $nnodes "--map-by" "ppr:1:node" "--bind-to" "none" -}}
{{- $mpirun = concat $mpirun $forward -}}
{{- concat $mpirun (list "sh" "-c" (printf "exec %s" (join " " $launch))) | toJson -}}
{{- end -}}

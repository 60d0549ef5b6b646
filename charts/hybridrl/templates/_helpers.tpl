{{/*
Names, labels and the pieces every workload shares. Component helpers take
(dict "context" $ "component" "<name>").
*/}}

{{- define "hybridrl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every resource name: the release name, so that resources are <release>-<component>
as the k8s/ manifests and the CLI address them (<release>-ssb-0.<release>-ssb:50053).
*/}}
{{- define "hybridrl.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "hybridrl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hybridrl.componentName" -}}
{{- printf "%s-%s" (include "hybridrl.fullname" .context) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hybridrl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hybridrl.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hybridrl.labels" -}}
helm.sh/chart: {{ include "hybridrl.chart" .context }}
{{ include "hybridrl.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: hybridrl
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels that select every pod of the release (NetworkPolicies). */}}
{{- define "hybridrl.instanceLabels" -}}
app.kubernetes.io/name: {{ include "hybridrl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
metadata of a component resource; optional "name", "labels" (added to the chart's) and
"annotations" in the dict.
*/}}
{{- define "hybridrl.metadata" -}}
name: {{ default (include "hybridrl.componentName" .) .name }}
namespace: {{ .context.Release.Namespace }}
labels:
  {{- include "hybridrl.labels" . | nindent 2 }}
  {{- with .labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- $common := default (dict) .context.Values.commonAnnotations }}
{{- $annotations := merge (dict) (default (dict) .annotations) $common }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "hybridrl.serviceAccountName" -}}
{{- $values := index .context.Values .component -}}
{{- if $values.serviceAccount.create -}}
{{- default (include "hybridrl.componentName" .) $values.serviceAccount.name -}}
{{- else -}}
{{- default "default" $values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* <registry>/<repository>:<tag> of a hybridrl component image. */}}
{{- define "hybridrl.image" -}}
{{- $values := index .context.Values .component -}}
{{- $global := .context.Values.image -}}
{{- $tag := default (default .context.Chart.AppVersion $global.tag) $values.image.tag -}}
{{- printf "%s/%s:%s" $global.registry $values.image.repository $tag -}}
{{- end -}}

{{- define "hybridrl.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* gRPC port of each component (the contract's table). */}}
{{- define "hybridrl.grpcPort" -}}
{{- get (dict "rollout" 50051 "reward" 50052 "ssb" 50053 "learner" 50054) . -}}
{{- end -}}

{{/* Pod annotations: the config checksum rolls the pods when their YAML changes. */}}
{{- define "hybridrl.podAnnotations" -}}
{{- $configMap := print .context.Template.BasePath "/config-configmap.yaml" }}
checksum/config: {{ include $configMap .context | sha256sum }}
{{- with (index .context.Values .component).podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Requests and limits, with nvidia.com/gpu in both when the component asks for GPUs. */}}
{{- define "hybridrl.resources" -}}
{{- $values := index .context.Values .component -}}
{{- $resources := deepCopy (default (dict) $values.resources) -}}
{{- if gt (int $values.gpu) 0 -}}
{{- $gpu := dict "nvidia.com/gpu" (int $values.gpu) -}}
{{- $_ := set $resources "requests" (merge (deepCopy $gpu) (default (dict) $resources.requests)) -}}
{{- $_ := set $resources "limits" (merge (deepCopy $gpu) (default (dict) $resources.limits)) -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end -}}

{{/* nodeSelector, tolerations, affinity and priorityClassName ("noPriorityClass": without). */}}
{{- define "hybridrl.scheduling" -}}
{{- $values := index .context.Values .component -}}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if not .noPriorityClass }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* gRPC health probes (grpc.health.v1, whole server) on the component's port. */}}
{{- define "hybridrl.grpcProbes" -}}
{{- $values := index .context.Values .component -}}
{{- $port := int (include "hybridrl.grpcPort" .component) -}}
startupProbe:
  grpc: {port: {{ $port }}}
  periodSeconds: {{ $values.startupProbe.periodSeconds }}
  failureThreshold: {{ $values.startupProbe.failureThreshold }}
  timeoutSeconds: 5
livenessProbe:
  grpc: {port: {{ $port }}}
  periodSeconds: {{ $values.livenessProbe.periodSeconds }}
  failureThreshold: {{ $values.livenessProbe.failureThreshold }}
  timeoutSeconds: 5
readinessProbe:
  grpc: {port: {{ $port }}}
  periodSeconds: {{ $values.readinessProbe.periodSeconds }}
  failureThreshold: {{ $values.readinessProbe.failureThreshold }}
  timeoutSeconds: 5
{{- end -}}

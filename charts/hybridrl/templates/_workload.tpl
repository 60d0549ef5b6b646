{{/*
Pod pieces shared by the workloads: secret environment, the config volume, security contexts,
the service container. Take (dict "context" $ "component" "<name>").
*/}}

{{- define "hybridrl.configDir" -}}/etc/hybridrl{{- end -}}

{{/* HYBRIDRL_<SERVICE>_... variables read from Secrets (the settings' SecretStr fields). */}}
{{- define "hybridrl.secretEnv" -}}
{{- $values := .context.Values -}}
{{- $prefix := printf "HYBRIDRL_%s_" (upper .component) -}}
{{- $storeSecret := include "hybridrl.objectStoreSecret" .context -}}
{{- if $storeSecret }}
- name: {{ $prefix }}OBJECT_STORE__ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ $storeSecret }}, key: {{ $values.objectStore.accessKeyKey }}}
- name: {{ $prefix }}OBJECT_STORE__SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ $storeSecret }}, key: {{ $values.objectStore.secretKeyKey }}}
{{- end }}
{{- if include "hybridrl.kafkaUsesSasl" .context }}
- name: {{ $prefix }}KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $values.kafka.security.sasl.existingSecret }}
      key: {{ $values.kafka.security.sasl.passwordKey }}
{{- end }}
{{- end -}}

{{/* One read-only volume at /etc/hybridrl: the component's YAML and the Kafka TLS files. */}}
{{- define "hybridrl.configVolume" -}}
{{- $values := .context.Values -}}
- name: config
  projected:
    defaultMode: 0440
    sources:
      - configMap:
          name: {{ printf "%s-config" (include "hybridrl.fullname" .context) }}
          items:
            - {key: {{ .component }}.yaml, path: {{ .component }}.yaml}
      {{- with include "hybridrl.kafkaTlsSecret" .context }}
      - secret:
          name: {{ . }}
          items:
            - {key: {{ $values.kafka.security.tls.caKey }}, path: kafka-tls/ca.crt}
            {{- if $values.kafka.security.tls.clientAuth }}
            - {key: {{ $values.kafka.security.tls.certKey }}, path: kafka-tls/tls.crt}
            - {key: {{ $values.kafka.security.tls.keyKey }}, path: kafka-tls/tls.key}
            {{- end }}
      {{- end }}
- name: tmp
  emptyDir:
    sizeLimit: {{ (index $values .component).tmpSizeLimit }}
{{- with (index $values .component).shmSizeLimit }}
- name: shm
  emptyDir:
    medium: Memory
    sizeLimit: {{ . }}
{{- end }}
{{- end -}}

{{- define "hybridrl.volumeMounts" -}}
- {name: config, mountPath: {{ include "hybridrl.configDir" . }}, readOnly: true}
- {name: tmp, mountPath: /tmp}
{{- if (index .context.Values .component).shmSizeLimit }}
- {name: shm, mountPath: /dev/shm}
{{- end }}
{{- end -}}

{{/* Pod-level fields every hybridrl pod has. */}}
{{- define "hybridrl.podSpecCommon" -}}
serviceAccountName: {{ include "hybridrl.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .context.Values.podSecurityContext | nindent 2 }}
{{- include "hybridrl.imagePullSecrets" .context }}
{{- include "hybridrl.scheduling" . }}
{{- end -}}

{{/* The container of a gRPC service: `hybridrl serve <component> --config ...`. */}}
{{- define "hybridrl.serviceContainer" -}}
{{- $values := .context.Values -}}
- name: {{ .component }}
  image: {{ include "hybridrl.image" . }}
  imagePullPolicy: {{ $values.image.pullPolicy }}
  args:
    - serve
    - {{ .component }}
    - --config
    - {{ include "hybridrl.configDir" . }}/{{ .component }}.yaml
  ports:
    - name: grpc
      containerPort: {{ include "hybridrl.grpcPort" .component }}
      protocol: TCP
  {{- $env := include "hybridrl.secretEnv" . }}
  {{- if or $env (eq .component "ssb") }}
  env:
    {{- if eq .component "ssb" }}
    # The shard is the pod's name: its snapshots live under ssb/<pod name>/.
    - name: HYBRIDRL_SSB_SHARD
      valueFrom:
        fieldRef: {fieldPath: metadata.name}
    {{- end }}
    {{- $env | trim | nindent 4 }}
  {{- end }}
  {{- include "hybridrl.grpcProbes" . | nindent 2 }}
  resources:
    {{- include "hybridrl.resources" . | nindent 4 }}
  securityContext:
    {{- toYaml $values.containerSecurityContext | nindent 4 }}
  volumeMounts:
    {{- include "hybridrl.volumeMounts" . | nindent 4 }}
{{- end -}}

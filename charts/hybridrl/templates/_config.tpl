{{/*
The services' settings (rollout.yaml, reward.yaml, ssb.yaml, learner.yaml): connection settings
computed from kafka/objectStore/dev, with each component's `config` merged over them. Secrets
never appear here; they reach the pods as HYBRIDRL_<SERVICE>_... variables from Secrets.
*/}}

{{- define "hybridrl.kafkaTlsDir" -}}/etc/hybridrl/kafka-tls{{- end -}}

{{- define "hybridrl.kafkaBootstrapServers" -}}
{{- if .Values.dev.enabled -}}
{{- printf "%s-kafka:9092" (include "hybridrl.fullname" .) -}}
{{- else -}}
{{- .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* The protocol the services speak: the dev broker is PLAINTEXT. */}}
{{- define "hybridrl.kafkaProtocol" -}}
{{- if .Values.dev.enabled -}}PLAINTEXT{{- else -}}{{ .Values.kafka.security.protocol }}{{- end -}}
{{- end -}}

{{- define "hybridrl.kafkaUsesSasl" -}}
{{- if hasPrefix "SASL_" (include "hybridrl.kafkaProtocol" .) -}}true{{- end -}}
{{- end -}}

{{- define "hybridrl.kafkaTlsSecret" -}}
{{- $protocol := include "hybridrl.kafkaProtocol" . -}}
{{- if and (hasSuffix "SSL" $protocol) .Values.kafka.security.tls.existingSecret -}}
{{- .Values.kafka.security.tls.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "hybridrl.kafkaSettings" -}}
{{- $values := .context.Values -}}
{{- $kafka := dict
  "bootstrap_servers" (include "hybridrl.kafkaBootstrapServers" .context)
  "client_id" (printf "hybridrl-%s" .component)
-}}
{{- $protocol := include "hybridrl.kafkaProtocol" .context -}}
{{- $_ := set $kafka "security_protocol" $protocol -}}
{{- if include "hybridrl.kafkaUsesSasl" .context -}}
{{- $sasl := $values.kafka.security.sasl -}}
{{- $with := printf "is required with kafka.security.protocol %s" $protocol -}}
{{- $_ := set $kafka "sasl_mechanism"
  (required (printf "kafka.security.sasl.mechanism %s" $with) $sasl.mechanism) -}}
{{- $_ := set $kafka "sasl_username"
  (required (printf "kafka.security.sasl.username %s" $with) $sasl.username) -}}
{{- $_ := required
  (printf "kafka.security.sasl.existingSecret (the Secret holding the password) %s" $with)
  $sasl.existingSecret -}}
{{- end -}}
{{- if include "hybridrl.kafkaTlsSecret" .context -}}
{{- $dir := include "hybridrl.kafkaTlsDir" . -}}
{{- $_ := set $kafka "ssl_cafile" (printf "%s/ca.crt" $dir) -}}
{{- if $values.kafka.security.tls.clientAuth -}}
{{- $_ := set $kafka "ssl_certfile" (printf "%s/tls.crt" $dir) -}}
{{- $_ := set $kafka "ssl_keyfile" (printf "%s/tls.key" $dir) -}}
{{- end -}}
{{- end -}}
{{- toYaml $kafka -}}
{{- end -}}

{{- define "hybridrl.objectStoreSettings" -}}
{{- $values := .Values -}}
{{- $store := dict "region" $values.objectStore.region "bucket" $values.objectStore.bucket -}}
{{- if $values.dev.enabled -}}
{{- $_ := set $store "endpoint" (printf "%s-minio:9000" (include "hybridrl.fullname" .)) -}}
{{- $_ := set $store "secure" false -}}
{{- $_ := set $store "create_bucket" true -}}
{{- else -}}
{{- $endpoint := $values.objectStore.endpoint -}}
{{- $_ := set $store "endpoint"
  (required "objectStore.endpoint is required (host:port of the S3 API)" $endpoint) -}}
{{- $_ := set $store "secure" $values.objectStore.secure -}}
{{- end -}}
{{- toYaml $store -}}
{{- end -}}

{{/* Name of the Secret with the object-store keys; empty for anonymous access. */}}
{{- define "hybridrl.objectStoreSecret" -}}
{{- if .Values.dev.enabled -}}
{{- default (printf "%s-minio" (include "hybridrl.fullname" .)) .Values.dev.minio.existingSecret -}}
{{- else -}}
{{- .Values.objectStore.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* host:port of SSB shard 0 through the headless Service (the contract's address). */}}
{{- define "hybridrl.ssbAddress" -}}
{{- $ssb := include "hybridrl.componentName" (dict "context" . "component" "ssb") -}}
{{- printf "%s-0.%s:%d" $ssb $ssb (int (include "hybridrl.grpcPort" "ssb")) -}}
{{- end -}}

{{/* Group id of a consumer: the component's config wins over the service's default. */}}
{{- define "hybridrl.groupId" -}}
{{- $config := (index .context.Values .component).config -}}
{{- default (printf "hybridrl-%s" .component) (get $config "group_id") -}}
{{- end -}}

{{- define "hybridrl.serviceSettings" -}}
{{- $values := .context.Values -}}
{{- $settings := dict
  "kafka" (include "hybridrl.kafkaSettings" . | fromYaml)
  "object_store" (include "hybridrl.objectStoreSettings" .context | fromYaml)
  "grpc" (dict "port" (int (include "hybridrl.grpcPort" .component)))
  "topic_prefix" $values.topics.prefix
-}}
{{- if eq .component "learner" -}}
{{- $gpu := gt (int $values.learner.gpu) 0 -}}
{{- $_ := set $settings "run_name" $values.learner.runName -}}
{{- $_ := set $settings "run" (deepCopy $values.config.run) -}}
{{- $_ := set $settings "ssb_address" (include "hybridrl.ssbAddress" .context) -}}
{{- $_ := set $settings "deepspeed"
  (dict "backend" (ternary "nccl" "gloo" $gpu) "accelerator" (ternary "cuda" "cpu" $gpu)) -}}
{{- end -}}
{{- $merged := mustMergeOverwrite $settings (deepCopy (index $values .component).config) -}}
{{- toYaml $merged -}}
{{- end -}}

{{/* Values that no schema can check alone; fails the render with the reason. */}}
{{- define "hybridrl.validate" -}}
{{- $values := .Values -}}
{{- $autoscaling := $values.rollout.autoscaling -}}
{{- if and $autoscaling.keda.enabled $autoscaling.hpa.enabled -}}
{{- fail (print "rollout.autoscaling: enable keda or hpa, not both"
  " (both would scale the same Deployment)") -}}
{{- end -}}
{{- $protocol := include "hybridrl.kafkaProtocol" . -}}
{{- $keda := $autoscaling.keda -}}
{{- if and $keda.enabled (ne $protocol "PLAINTEXT") (not $keda.triggerAuthenticationName) -}}
{{- fail (printf "%s %s %s: KEDA needs its own Kafka credentials"
  "rollout.autoscaling.keda.triggerAuthenticationName"
  "is required with kafka.security.protocol" $protocol) -}}
{{- end -}}
{{- if and $values.topics.create (ne $protocol "PLAINTEXT") -}}
{{- fail (printf "%s %s; with kafka.security.protocol %s %s"
  "topics.create needs a PLAINTEXT broker"
  "(`hybridrl topics create` has no SASL/TLS options)" $protocol
  "set topics.create=false and create the topics yourself") -}}
{{- end -}}
{{- $learner := $values.learner -}}
{{- if and $learner.enabled (eq $learner.api "trainjob") (not $learner.trainJob.runtime.create)
  (not $learner.trainJob.runtime.name) -}}
{{- fail (print "learner.trainJob.runtime.name is required with"
  " learner.trainJob.runtime.create=false (the runtime the TrainJob references)") -}}
{{- end -}}
{{- $tls := $values.kafka.security.tls -}}
{{- if and $tls.clientAuth (not (include "hybridrl.kafkaTlsSecret" .)) (not $values.dev.enabled) -}}
{{- fail (print "kafka.security.tls.clientAuth needs kafka.security.tls.existingSecret"
  " and an SSL or SASL_SSL protocol") -}}
{{- end -}}
{{- end -}}

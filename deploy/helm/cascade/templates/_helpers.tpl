{{/* Chart name, overridable. */}}
{{- define "cascade.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: <release>-<chart>, or the release name alone when it already holds the chart name. */}}
{{- define "cascade.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's resources: (dict "root" $ "component" "verifier"). */}}
{{- define "cascade.componentName" -}}
{{- printf "%s-%s" (include "cascade.fullname" .root) (.component | replace "_" "-") | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "cascade.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "cascade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "verifier"). */}}
{{- define "cascade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cascade.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component. */}}
{{- define "cascade.componentLabels" -}}
{{ include "cascade.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image reference of a variant: (dict "root" $ "variant" "cpu"). */}}
{{- define "cascade.image" -}}
{{- $img := index .root.Values.images .variant -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* gRPC address of a component's Service: (dict "root" $ "component" "verifier" "port" 50052). */}}
{{- define "cascade.address" -}}
{{- printf "%s:%v" (include "cascade.componentName" .) .port -}}
{{- end -}}

{{/*
Load-balanced gRPC target of a scaled-out component: (dict "root" $ "component"
"verifier" "port" 50052). "dns:///" over the headless Service resolves to every
ready pod, and the channel's round_robin spreads calls over them; the servers'
--max_connection_age_s makes clients re-resolve and find pods the HPA adds.
*/}}
{{- define "cascade.balancedAddress" -}}
{{- printf "dns:///%s-headless.%s.svc:%v" (include "cascade.componentName" .) .root.Release.Namespace .port -}}
{{- end -}}

{{/* The headless Service behind cascade.balancedAddress: gRPC only, ready pods only. */}}
{{- define "cascade.balancedService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "cascade.componentName" .ctx }}-headless
  labels:
    {{- include "cascade.componentLabels" .ctx | nindent 4 }}
spec:
  clusterIP: None
  selector:
    {{- include "cascade.selectorLabels" .ctx | nindent 4 }}
  # No metrics port: the ServiceMonitor scrapes each pod once, through the
  # ClusterIP Service.
  ports:
    - {name: grpc, port: {{ .port }}, targetPort: grpc, appProtocol: grpc}
{{- end -}}

{{/* Environment shared by every container. */}}
{{- define "cascade.commonEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
{{- if .Values.tls.enabled }}
- name: CASCADE_TLS_CERT_FILE
  value: {{ printf "%s/tls.crt" .Values.tls.mountPath | quote }}
- name: CASCADE_TLS_KEY_FILE
  value: {{ printf "%s/tls.key" .Values.tls.mountPath | quote }}
- name: CASCADE_TLS_CA_FILE
  value: {{ printf "%s/ca.crt" .Values.tls.mountPath | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volume mounts shared by every container. */}}
{{- define "cascade.commonVolumeMounts" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ .Values.tls.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Volumes shared by every pod. */}}
{{- define "cascade.commonVolumes" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ required "tls.secretName is required when tls.enabled" .Values.tls.secretName }}
{{- end }}
{{- end -}}

{{/* The read-only models volume. */}}
{{- define "cascade.modelsVolume" -}}
- name: models
{{- if .Values.storage.models.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.storage.models.existingClaim }}
    readOnly: true
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{/* Startup, liveness and readiness probes over grpc.health.v1 on `port`: (dict "root" $ "port" 50052).
A busy service (a verifier at full CPU, a rollout mid-batch) may answer health
slowly: timeouts are generous and liveness needs several misses. With TLS the
servers require client certificates, which the kubelet's gRPC probe cannot
present: the probes then check that the port accepts connections. */}}
{{- define "cascade.probeAction" -}}
{{- if .root.Values.tls.enabled -}}
tcpSocket: {port: {{ .port }}}
{{- else -}}
grpc: {port: {{ .port }}}
{{- end -}}
{{- end -}}
{{- define "cascade.grpcProbes" -}}
startupProbe:
  {{- include "cascade.probeAction" . | nindent 2 }}
  periodSeconds: {{ .root.Values.probes.periodSeconds }}
  timeoutSeconds: {{ .root.Values.probes.timeoutSeconds }}
  failureThreshold: {{ div .root.Values.probes.startupSeconds .root.Values.probes.periodSeconds | max 1 }}
livenessProbe:
  {{- include "cascade.probeAction" . | nindent 2 }}
  periodSeconds: {{ .root.Values.probes.periodSeconds }}
  timeoutSeconds: {{ .root.Values.probes.timeoutSeconds }}
  failureThreshold: 6
readinessProbe:
  {{- include "cascade.probeAction" . | nindent 2 }}
  periodSeconds: {{ .root.Values.probes.periodSeconds }}
  timeoutSeconds: {{ .root.Values.probes.timeoutSeconds }}
  failureThreshold: 3
{{- end -}}

{{/* Resources with the GPU count added: (dict "resources" .resources "gpus" .gpus). */}}
{{- define "cascade.resources" -}}
{{- $r := deepCopy (default dict .resources) -}}
{{- if gt (int .gpus) 0 -}}
{{- $limits := merge (dict "nvidia.com/gpu" (int .gpus)) (default dict $r.limits) -}}
{{- $_ := set $r "limits" $limits -}}
{{- end -}}
{{- toYaml $r -}}
{{- end -}}

{{/* Scheduling keys of a component's values. */}}
{{- define "cascade.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Every rollout replica's stable address, comma-separated (the learner publishes to each). */}}
{{- define "cascade.rolloutAddresses" -}}
{{- $name := include "cascade.componentName" (dict "root" . "component" "rollout") -}}
{{- $addrs := list -}}
{{- range $i := until (int .Values.rollout.replicas) -}}
{{- $addrs = append $addrs (printf "%s-%d.%s-headless.%s.svc:%v" $name $i $name $.Release.Namespace $.Values.rollout.port) -}}
{{- end -}}
{{- join "," $addrs -}}
{{- end -}}

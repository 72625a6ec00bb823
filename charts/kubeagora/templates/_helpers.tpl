{{/*
Object names are fixed (kubeagora-operator, kubeagora-scheduler-extender, ...), the same as in
manifests/: the CRDs, the webhook and the cluster roles are cluster-wide, so one release per cluster.
*/}}

{{- define "kubeagora.labels" -}}
app.kubernetes.io/part-of: kubeagora
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "kubeagora.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "kubeagora.prometheusUrl" -}}
{{- if .Values.operator.prometheusUrl -}}
{{ .Values.operator.prometheusUrl }}
{{- else if .Values.prometheus.enabled -}}
http://prometheus.{{ .Release.Namespace }}.svc:9090
{{- else -}}
{{ fail "operator.prometheusUrl is required when prometheus.enabled is false (the operator reads load and latency from Prometheus)" }}
{{- end -}}
{{- end }}

{{- define "kubeagora.extenderUrl" -}}
https://kubeagora-scheduler-extender.{{ .Release.Namespace }}.svc:{{ .Values.extender.port }}
{{- end }}

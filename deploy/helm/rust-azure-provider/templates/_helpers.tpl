{{- define "rust-azure-provider.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rust-azure-provider.labels" -}}
app: {{ include "rust-azure-provider.name" . }}
app.kubernetes.io/name: {{ include "rust-azure-provider.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rust-azure-provider.selectorLabels" -}}
app: {{ include "rust-azure-provider.name" . }}
{{- end -}}

{{/* --log-filter: logFilter when set, else the provider at logLevel and everything else at warn. */}}
{{- define "rust-azure-provider.logFilter" -}}
{{- if .Values.logFilter -}}
{{- .Values.logFilter -}}
{{- else -}}
{{- printf "rust_azure_provider=%s,warn" .Values.logLevel -}}
{{- end -}}
{{- end -}}

{{/* drainTimeout in whole seconds (rounded up); values.schema.json allows <n>ms, <n>s, <n>m, <n>h. */}}
{{- define "rust-azure-provider.drainSeconds" -}}
{{- $d := toString .Values.drainTimeout -}}
{{- if hasSuffix "ms" $d -}}
{{- div (add (trimSuffix "ms" $d | int) 999) 1000 -}}
{{- else if hasSuffix "s" $d -}}
{{- trimSuffix "s" $d | int -}}
{{- else if hasSuffix "m" $d -}}
{{- mul (trimSuffix "m" $d | int) 60 -}}
{{- else if hasSuffix "h" $d -}}
{{- mul (trimSuffix "h" $d | int) 3600 -}}
{{- else -}}
{{- fail (printf "drainTimeout %q: use <n>ms, <n>s, <n>m or <n>h" $d) -}}
{{- end -}}
{{- end -}}

{{/* Above drainTimeout, so that in-flight Mounts finish before the kubelet kills the pod. */}}
{{- define "rust-azure-provider.terminationGracePeriodSeconds" -}}
{{- $drain := include "rust-azure-provider.drainSeconds" . | int -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $drain 15 -}}
{{- else if le (.Values.terminationGracePeriodSeconds | int) $drain -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed drainTimeout (%s = %ds), or the kubelet kills in-flight Mounts" .Values.terminationGracePeriodSeconds .Values.drainTimeout $drain) -}}
{{- else -}}
{{- .Values.terminationGracePeriodSeconds | int -}}
{{- end -}}
{{- end -}}

{{/* The chart name, overridable. */}}
{{- define "ferrocert.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: the release name, plus the chart name unless the release name
already contains it. Cluster-scoped objects (ClusterRole, ClusterRoleBinding) carry it too, so two
releases never collide. Truncated so "<fullname>-metrics" still fits 63 characters.
*/}}
{{- define "ferrocert.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ferrocert.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "ferrocert.labels" -}}
helm.sh/chart: {{ include "ferrocert.chart" . }}
{{ include "ferrocert.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferrocert
{{- end }}

{{/* Labels selecting the controller's pods. */}}
{{- define "ferrocert.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrocert.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ferrocert.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ferrocert.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ferrocert.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* NAMESPACE/NAME of the HTTP-01 Service, whose EndpointSlices the controller mirrors. */}}
{{- define "ferrocert.http01Service" -}}
{{- printf "%s/%s-http01" .Release.Namespace (include "ferrocert.fullname" .) }}
{{- end }}

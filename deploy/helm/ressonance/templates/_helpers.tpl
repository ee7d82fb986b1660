{{- define "ressonance.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ressonance.appSecret" -}}
{{- .Values.app.existingSecret | default (printf "%s-app" .Release.Name) -}}
{{- end }}

{{- define "talos.fullname" -}}{{ .Release.Name }}-talos{{- end -}}
{{- define "talos.secretName" -}}{{ .Values.secrets.existingSecret | default (printf "%s-secrets" (include "talos.fullname" .)) }}{{- end -}}
{{- define "talos.labels" -}}
app.kubernetes.io/name: talos
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
